package cluster

// TensorFlow's server is reached through the C API of the libtensorflow
// graft links (tensorflow/c/c_api.h): graft has no wrapper for it.

// #cgo LDFLAGS: -ltensorflow
// #include <stdlib.h>
// #include "tensorflow/c/c_api.h"
import "C"

import (
	"fmt"

	configpb "github.com/wamuir/graft/tensorflow/core/protobuf/for_core_protos_go_proto"
	"google.golang.org/protobuf/proto"
)

// Server is a started TensorFlow gRPC server: one task of a cluster. It
// serves until the process exits: TensorFlow's TF_ServerStop is
// unimplemented and deleting a started server aborts the process, so a
// Server is never stopped or freed.
type Server struct {
	c      *C.TF_Server
	target string
}

// ServerConfig is the default session config of every server of a
// cluster: CollectiveReduceV2 needs a group leader, the same task on every
// server, to form its groups.
func ServerConfig() *configpb.ConfigProto {
	return &configpb.ConfigProto{Experimental: &configpb.ConfigProto_Experimental{
		CollectiveGroupLeader: "/job:" + WorkerJob + "/replica:0/task:0",
	}}
}

// Start starts the server of job's task in this process. The error names
// the file, job, task and address (a port in use, an address not of this
// host).
func Start(s *Spec, job string, task int) (*Server, error) {
	addr, err := s.Address(job, task)
	if err != nil {
		return nil, err
	}
	def := &configpb.ServerDef{Cluster: s.Def(), JobName: job, TaskIndex: int32(task), Protocol: "grpc",
		DefaultSessionConfig: ServerConfig()}
	b, err := proto.Marshal(def)
	if err != nil {
		return nil, fmt.Errorf("encode server def: %w", err)
	}
	status := C.TF_NewStatus()
	defer C.TF_DeleteStatus(status)
	buf := C.CBytes(b)
	defer C.free(buf)
	srv := C.TF_NewServer(buf, C.size_t(len(b)), status)
	if C.TF_GetCode(status) != C.TF_OK {
		return nil, fmt.Errorf("%s: %s task %d at %s: %s: is the port taken, or the host not this machine?", s.Path, job, task, addr, oneLine(C.GoString(C.TF_Message(status))))
	}
	C.TF_ServerStart(srv, status)
	if C.TF_GetCode(status) != C.TF_OK {
		// Not started: deleting is safe.
		C.TF_DeleteServer(srv)
		return nil, fmt.Errorf("%s: start %s task %d at %s: %s", s.Path, job, task, addr, oneLine(C.GoString(C.TF_Message(status))))
	}
	return &Server{c: srv, target: C.GoString(C.TF_ServerTarget(srv))}, nil
}

// Target is the server's session target, grpc://host:port.
func (s *Server) Target() string { return s.target }
