package main

// TensorFlow prints its oneDNN INFO line while the shared library loads,
// before any Go code runs, and reads TF_CPP_MIN_LOG_LEVEL once. A function
// in the executable's .preinit_array runs before every shared library's
// initialiser (ELF gABI), so before that line; but a setenv there is lost
// (libc's own initialiser, which runs later, resets environ to the
// original envp). So it re-executes the program at once with the level in
// its environment: the first image never ran any library code, so this
// costs a few milliseconds and prints nothing. hiddenMarker tells the Go
// side the level is ours, not the user's (see reexecVerbose).

/*
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void pipeline_quiet_tensorflow(int argc, char **argv, char **envp) {
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) break;
		if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "--verbose=true") == 0) return;
	}
	int n = 0;
	for (; envp[n]; n++) {
		if (strncmp(envp[n], "TF_CPP_MIN_LOG_LEVEL=", 21) == 0) return; // the user's own setting wins
	}
	char **env = malloc((n + 3) * sizeof *env);
	if (env == NULL) return;
	memcpy(env, envp, n * sizeof *env);
	env[n] = "TF_CPP_MIN_LOG_LEVEL=2";
	env[n + 1] = "PIPELINE_TF_LOGS_HIDDEN=1";
	env[n + 2] = NULL;
	execve("/proc/self/exe", argv, env);
	free(env); // exec failed: carry on, with TensorFlow's lines
}

__attribute__((section(".preinit_array"), used))
static void (*pipeline_quiet_tensorflow_entry)(int, char **, char **) = pipeline_quiet_tensorflow;
*/
import "C"

import (
	"bufio"
	"os"
	"regexp"
	"runtime/debug"
	"sync/atomic"
	"syscall"
)

// tensorFlowLine matches the log lines TensorFlow and its absl logging
// write to stderr at INFO and WARNING severity, and absl's notice that
// logging is not initialised. ERROR and FATAL lines pass.
var tensorFlowLine = regexp.MustCompile(`^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR|[IW]\d{4} [\d:.]+ +\d+ [^ ]+:\d+\] |\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] )`)

// logFilter sits on file descriptor 2, where TensorFlow's C++ code writes,
// and forwards every line but TensorFlow's INFO/WARNING lines to the real
// stderr, which Go code (os.Stderr) now writes to directly.
type logFilter struct {
	all  atomic.Bool
	done chan struct{}
}

// filterTensorFlowLogs moves the real stderr to a new descriptor, for Go,
// and puts a pipe read by the filter on descriptor 2. Go's own fatal
// errors, which the runtime writes to descriptor 2, are also sent to the
// real stderr (debug.SetCrashOutput), so a crash is never lost in the pipe.
func filterTensorFlowLogs() *logFilter {
	real, err := syscall.Dup(2)
	if err != nil {
		return nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		syscall.Close(real)
		return nil
	}
	if err := syscall.Dup3(int(w.Fd()), 2, 0); err != nil {
		syscall.Close(real)
		r.Close()
		w.Close()
		return nil
	}
	w.Close()
	os.Stderr = os.NewFile(uintptr(real), "/dev/stderr")
	_ = debug.SetCrashOutput(os.Stderr, debug.CrashOptions{})
	f := &logFilter{done: make(chan struct{})}
	go func() {
		defer close(f.done)
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadString('\n')
			if line != "" && (f.all.Load() || !tensorFlowLine.MatchString(line)) {
				os.Stderr.WriteString(line)
			}
			if err != nil {
				return
			}
		}
	}()
	return f
}

// passAll lets every line through from now on.
func (f *logFilter) passAll() {
	if f != nil {
		f.all.Store(true)
	}
}

// close points descriptor 2 back at the real stderr and waits until the
// filter has forwarded what the pipe held.
func (f *logFilter) close() {
	if f == nil {
		return
	}
	syscall.Dup3(int(os.Stderr.Fd()), 2, 0) // closes the pipe's last write end
	<-f.done
}
