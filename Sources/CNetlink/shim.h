// System headers for libmnl + libnftnl. glibc's network headers come first so that
// <linux/in.h> does not redefine in_addr (see guides/swift-on-linux.md, pitfall 1).
#ifndef SVR_CNETLINK_SHIM_H
#define SVR_CNETLINK_SHIM_H
#include <sys/socket.h>
#include <netinet/in.h>
#include <net/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/fib_rules.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <libmnl/libmnl.h>
#include <libnftnl/table.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/expr.h>
#include <libnftnl/set.h>
#include <libnftnl/common.h>
#include <libnftnl/batch.h>
#endif
