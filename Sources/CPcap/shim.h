// libpcap as a system library (Debian: libpcap-dev). Only the public header; no wrappers here.
#include <pcap/pcap.h>
