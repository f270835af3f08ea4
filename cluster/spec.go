// Package cluster reads a TensorFlow cluster description (cluster.yaml,
// TensorFlow's ClusterSpec shape: job name → list of host:port, the list
// index being the task) and runs one task of it as a TensorFlow server.
package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	configpb "github.com/wamuir/graft/tensorflow/core/protobuf/for_core_protos_go_proto"
	"gopkg.in/yaml.v3"
)

// WorkerJob is the job whose tasks each train one tower of a
// data-parallel run; task 0 also holds the variables and is the master the
// chief's session talks to.
const WorkerJob = "worker"

// Spec is a parsed cluster.yaml.
type Spec struct {
	// Path is the file it was read from, for error messages.
	Path string
	// Jobs maps each job name to its tasks' host:port addresses, in task order.
	Jobs map[string][]string
}

// jobName is what TensorFlow accepts as a job name in a device string
// (tensorflow/core/util/device_name_utils.cc: [a-z][a-z0-9_]*).
var jobName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Load reads and checks the cluster file at path.
func Load(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("cluster file %s: %v", path, err)
	}
	return Parse(path, b)
}

// Parse checks a cluster description read from path: a mapping of job
// names to non-empty lists of distinct host:port addresses, with a
// worker job. Every error is one line naming the file and the key.
func Parse(path string, data []byte) (*Spec, error) {
	var raw map[string][]string
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty: list the workers, e.g. \"worker: [10.0.0.1:2222, 10.0.0.2:2222]\"", path)
		}
		return nil, fmt.Errorf("%s: not a cluster spec (job name → list of host:port, e.g. \"worker: [10.0.0.1:2222, 10.0.0.2:2222]\"): %s", path, oneLine(err.Error()))
	}
	s := &Spec{Path: path, Jobs: raw}
	seen := map[string]string{}
	jobs := make([]string, 0, len(raw))
	for j := range raw {
		jobs = append(jobs, j)
	}
	slices.Sort(jobs)
	for _, job := range jobs {
		if !jobName.MatchString(job) {
			return nil, fmt.Errorf("%s: job %q: a job name is lower-case letters, digits and _ starting with a letter", path, job)
		}
		if len(raw[job]) == 0 {
			return nil, fmt.Errorf("%s: job %s has no tasks: list at least one host:port", path, job)
		}
		for i, addr := range raw[job] {
			key := fmt.Sprintf("%s[%d]", job, i)
			if err := checkAddress(addr); err != nil {
				return nil, fmt.Errorf("%s: %s: %q %v", path, key, addr, err)
			}
			if other, dup := seen[addr]; dup {
				return nil, fmt.Errorf("%s: %s: %s is also %s: every task needs its own host:port", path, key, addr, other)
			}
			seen[addr] = key
		}
	}
	if len(raw[WorkerJob]) == 0 {
		return nil, fmt.Errorf("%s: no job %q: list the training processes' host:port under worker:", path, WorkerJob)
	}
	return s, nil
}

func checkAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("is not host:port")
	}
	if host == "" {
		return fmt.Errorf("has no host (use e.g. localhost:%s)", port)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %q is not a number in 1..65535", port)
	}
	return nil
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Workers returns the worker job's addresses, in task order.
func (s *Spec) Workers() []string { return s.Jobs[WorkerJob] }

// Address returns the host:port of job's task, or an error naming the
// file and the tasks that exist.
func (s *Spec) Address(job string, task int) (string, error) {
	tasks, ok := s.Jobs[job]
	if !ok {
		names := make([]string, 0, len(s.Jobs))
		for j := range s.Jobs {
			names = append(names, j)
		}
		slices.Sort(names)
		return "", fmt.Errorf("--job %s: %s has no such job (it has %s)", job, s.Path, strings.Join(names, ", "))
	}
	if task < 0 || task >= len(tasks) {
		return "", fmt.Errorf("--task %d: job %s in %s has tasks 0..%d", task, job, s.Path, len(tasks)-1)
	}
	return tasks[task], nil
}

// Device is the TensorFlow device prefix of a task: /job:worker/task:1.
func Device(job string, task int) string { return fmt.Sprintf("/job:%s/task:%d", job, task) }

// Def is the spec as TensorFlow's ClusterDef.
func (s *Spec) Def() *configpb.ClusterDef {
	names := make([]string, 0, len(s.Jobs))
	for j := range s.Jobs {
		names = append(names, j)
	}
	slices.Sort(names)
	def := &configpb.ClusterDef{}
	for _, j := range names {
		tasks := map[int32]string{}
		for i, a := range s.Jobs[j] {
			tasks[int32(i)] = a
		}
		def.Job = append(def.Job, &configpb.JobDef{Name: j, Tasks: tasks})
	}
	return def
}
