//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
)

// benchCRI is a minimal CRI client for TestBenchCreate: CreateContainer and RemoveContainer
// over containerd's gRPC socket, so a measurement holds the RPC and nothing else (crictl
// would add a process start and a connection per create, both larger than what is being
// measured). k8s.io/cri-api is not a dependency of this module, so the few messages needed
// are encoded by hand with protowire, with the field numbers of runtime/v1/api.proto.
type benchCRI struct {
	conn *grpc.ClientConn
}

const (
	criCreateContainer = "/runtime.v1.RuntimeService/CreateContainer"
	criRemoveContainer = "/runtime.v1.RuntimeService/RemoveContainer"
	criPullImage       = "/runtime.v1.ImageService/PullImage"
)

func dialBenchCRI(socket string) (*benchCRI, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &benchCRI{conn: conn}, nil
}

func (c *benchCRI) Close() error { return c.conn.Close() }

// rawCodec passes already-encoded protobuf bytes through gRPC.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.(*[]byte); ok {
		return *b, nil
	}
	return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	if b, ok := v.(*[]byte); ok {
		*b = append((*b)[:0], data...)
		return nil
	}
	return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
}

// CreateContainer sends req (from createRequest) and returns the new container's ID and
// how long the RPC took.
func (c *benchCRI) CreateContainer(ctx context.Context, req []byte) (string, time.Duration, error) {
	var resp []byte
	start := time.Now()
	err := c.conn.Invoke(ctx, criCreateContainer, &req, &resp, grpc.ForceCodec(rawCodec{}))
	took := time.Since(start)
	if err != nil {
		return "", took, err
	}
	id, err := protoString(resp, 1) // CreateContainerResponse.container_id
	return id, took, err
}

// PullImage pulls ref through CRI, as the kubelet does before a pod's first create.
func (c *benchCRI) PullImage(ctx context.Context, ref string) error {
	var spec []byte
	spec = appendString(spec, 1, ref)  // ImageSpec.image
	req := appendMessage(nil, 1, spec) // PullImageRequest.image
	var resp []byte
	return c.conn.Invoke(ctx, criPullImage, &req, &resp, grpc.ForceCodec(rawCodec{}))
}

// RemoveContainer removes a created container.
func (c *benchCRI) RemoveContainer(ctx context.Context, id string) error {
	req := protowire.AppendTag(nil, 1, protowire.BytesType) // RemoveContainerRequest.container_id
	req = protowire.AppendString(req, id)
	var resp []byte
	return c.conn.Invoke(ctx, criRemoveContainer, &req, &resp, grpc.ForceCodec(rawCodec{}))
}

// benchPodConfig is the pod sandbox config RunPod wrote, as crictl reads it.
type benchPodConfig struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
		UID       string `json:"uid"`
		Attempt   uint64 `json:"attempt"`
	} `json:"metadata"`
	LogDirectory string            `json:"log_directory"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	Linux        struct {
		CgroupParent    string `json:"cgroup_parent"`
		SecurityContext struct {
			NamespaceOptions struct {
				Network uint64 `json:"network"`
				Pid     uint64 `json:"pid"`
				Ipc     uint64 `json:"ipc"`
			} `json:"namespace_options"`
		} `json:"security_context"`
	} `json:"linux"`
}

// createRequest encodes a CreateContainerRequest for a container name from image in pod,
// with the pod's sandbox config as RunPod wrote it (the same one crictl create sends).
func createRequest(pod *Pod, name, image string, args ...string) ([]byte, error) {
	raw, err := os.ReadFile(pod.ConfigPath)
	if err != nil {
		return nil, err
	}
	var pc benchPodConfig
	if err := json.Unmarshal(raw, &pc); err != nil {
		return nil, fmt.Errorf("%s: %w", pod.ConfigPath, err)
	}

	// ContainerConfig
	var meta []byte
	meta = appendString(meta, 1, name) // ContainerMetadata.name
	var img []byte
	img = appendString(img, 1, image) // ImageSpec.image
	var cfg []byte
	cfg = appendMessage(cfg, 1, meta)
	cfg = appendMessage(cfg, 2, img)
	for _, a := range args {
		cfg = appendString(cfg, 4, a) // args
	}
	cfg = appendMap(cfg, 9, map[string]string{"e2e": "true"}) // labels
	cfg = appendString(cfg, 11, name+".log")                  // log_path
	cfg = appendMessage(cfg, 15, nil)                         // linux: empty, as crictl sends it

	// PodSandboxConfig
	var pmeta []byte
	pmeta = appendString(pmeta, 1, pc.Metadata.Name)
	pmeta = appendString(pmeta, 2, pc.Metadata.UID)
	pmeta = appendString(pmeta, 3, pc.Metadata.Namespace)
	pmeta = appendVarint(pmeta, 4, pc.Metadata.Attempt)
	var ns []byte // NamespaceOption
	ns = appendVarint(ns, 1, pc.Linux.SecurityContext.NamespaceOptions.Network)
	ns = appendVarint(ns, 2, pc.Linux.SecurityContext.NamespaceOptions.Pid)
	ns = appendVarint(ns, 3, pc.Linux.SecurityContext.NamespaceOptions.Ipc)
	var sec []byte // LinuxSandboxSecurityContext
	sec = appendMessage(sec, 1, ns)
	var linux []byte // LinuxPodSandboxConfig
	linux = appendString(linux, 1, pc.Linux.CgroupParent)
	linux = appendMessage(linux, 2, sec)
	var sb []byte
	sb = appendMessage(sb, 1, pmeta)
	sb = appendString(sb, 3, pc.LogDirectory)
	sb = appendMap(sb, 6, pc.Labels)
	sb = appendMap(sb, 7, pc.Annotations)
	sb = appendMessage(sb, 8, linux)

	var req []byte
	req = appendString(req, 1, pod.ID) // pod_sandbox_id
	req = appendMessage(req, 2, cfg)
	req = appendMessage(req, 3, sb)
	return req, nil
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, field protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendMessage(b []byte, field protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

// appendMap encodes a map<string,string> field as its repeated entries, in key order.
func appendMap(b []byte, field protowire.Number, m map[string]string) []byte {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	for _, k := range ks {
		var e []byte
		e = protowire.AppendTag(e, 1, protowire.BytesType)
		e = protowire.AppendString(e, k)
		e = protowire.AppendTag(e, 2, protowire.BytesType)
		e = protowire.AppendString(e, m[k])
		b = appendMessage(b, field, e)
	}
	return b
}

// protoString finds string field n at the top level of a message.
func protoString(msg []byte, n protowire.Number) (string, error) {
	for len(msg) > 0 {
		num, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return "", protowire.ParseError(l)
		}
		msg = msg[l:]
		if num == n && typ == protowire.BytesType {
			s, l := protowire.ConsumeString(msg)
			if l < 0 {
				return "", protowire.ParseError(l)
			}
			return s, nil
		}
		l = protowire.ConsumeFieldValue(num, typ, msg)
		if l < 0 {
			return "", protowire.ParseError(l)
		}
		msg = msg[l:]
	}
	return "", fmt.Errorf("field %d not found", n)
}
