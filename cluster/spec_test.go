package cluster

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestParseGarbage: every bad cluster file is refused with one line that
// names the file and the key at fault.
func TestParseGarbage(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"bad yaml", "worker: [127.0.0.1:1, 127.0.0.1:2\n", "not a cluster spec"},
		{"not a mapping", "- 127.0.0.1:1\n", "not a cluster spec"},
		{"empty", "", "empty"},
		{"no worker job", "ps: [127.0.0.1:2222]\n", `no job "worker"`},
		{"empty worker job", "worker: []\n", "job worker has no tasks"},
		{"bad address", "worker: [127.0.0.1:1, localhost]\n", `worker[1]: "localhost" is not host:port`},
		{"bad port", "worker: [127.0.0.1:99999]\n", `worker[0]: "127.0.0.1:99999" port "99999"`},
		{"no host", "worker: [':2222']\n", `worker[0]: ":2222" has no host`},
		{"duplicate address", "worker: [127.0.0.1:2222, 127.0.0.1:2223]\nps: [127.0.0.1:2222]\n", "worker[0]: 127.0.0.1:2222 is also ps[0]"},
		{"bad job name", "Worker: [127.0.0.1:2222]\n", `job "Worker"`},
		{"address not a string", "worker: [{a: 1}]\n", "not a cluster spec"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cluster.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if err == nil {
				t.Fatalf("accepted %q", tc.yaml)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, path+": ") || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line starting %q containing %q", msg, path+": ", tc.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml: no such file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestAddressAndDef(t *testing.T) {
	s, err := Parse("c.yaml", []byte("worker: [127.0.0.1:2222, 127.0.0.1:2223]\nps: [127.0.0.1:2224]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a, err := s.Address("worker", 1); err != nil || a != "127.0.0.1:2223" {
		t.Errorf("worker 1: %q %v", a, err)
	}
	for _, tc := range []struct {
		job  string
		task int
		want string
	}{{"worker", 2, "--task 2: job worker in c.yaml has tasks 0..1"}, {"worker", -1, "--task -1"}, {"chief", 0, "--job chief: c.yaml has no such job (it has ps, worker)"}} {
		if _, err := s.Address(tc.job, tc.task); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %d: %v, want %q", tc.job, tc.task, err, tc.want)
		}
	}
	def := s.Def()
	if len(def.Job) != 2 || def.Job[0].Name != "ps" || def.Job[1].Name != "worker" || def.Job[1].Tasks[1] != "127.0.0.1:2223" {
		t.Errorf("ClusterDef %v", def)
	}
}

// TestStartAndProbe: a server whose address is taken fails with a line
// naming the task and address; Unreachable names a task nobody serves.
func TestStartAndProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()
	s := &Spec{Path: "c.yaml", Jobs: map[string][]string{WorkerJob: {l.Addr().String(), freeAddr}}}
	if _, err := Start(s, WorkerJob, 0); err == nil || !strings.Contains(err.Error(), "c.yaml: worker task 0 at "+l.Addr().String()+": Could not start gRPC server: is the port taken") {
		t.Errorf("server on a taken port: %v", err)
	}
	err = s.Unreachable(context.Background(), WorkerJob, time.Second)
	if err == nil || !strings.Contains(err.Error(), "worker task 1 at "+freeAddr+" is unreachable") || !strings.Contains(err.Error(), "--task 1") {
		t.Errorf("Unreachable: %v", err)
	}
}
