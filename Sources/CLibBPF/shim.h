// libbpf as a system library (Debian: libbpf-dev), like CPcap: only the public headers, no wrappers here.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
