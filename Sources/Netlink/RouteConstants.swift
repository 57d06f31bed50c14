// rtnetlink constants from the kernel headers (through CNetlink), converted once to the
// Swift integer types the messages use. C enums arrive as `Int` (anonymous enums), as
// structs with a `rawValue` (named enums) or as `Int32` (#defines): see
// guides/swift-on-linux.md, pitfall 5. Nothing else in the module spells a C constant.

internal import CNetlink
import Glibc

enum RTNL {
    // ---- message types (linux/rtnetlink.h, anonymous enum) ---------------------------------
    static let newLink = UInt16(RTM_NEWLINK)
    static let delLink = UInt16(RTM_DELLINK)
    static let getLink = UInt16(RTM_GETLINK)
    static let newAddr = UInt16(RTM_NEWADDR)
    static let delAddr = UInt16(RTM_DELADDR)
    static let getAddr = UInt16(RTM_GETADDR)
    static let newRoute = UInt16(RTM_NEWROUTE)
    static let delRoute = UInt16(RTM_DELROUTE)
    static let getRoute = UInt16(RTM_GETROUTE)
    static let newRule = UInt16(RTM_NEWRULE)
    static let delRule = UInt16(RTM_DELRULE)
    static let getRule = UInt16(RTM_GETRULE)

    // ---- fixed headers ---------------------------------------------------------------------
    static let ifinfomsgSize = MemoryLayout<ifinfomsg>.size  // 16
    static let ifaddrmsgSize = MemoryLayout<ifaddrmsg>.size  // 8
    static let rtmsgSize = MemoryLayout<rtmsg>.size  // 12
    static let fibRuleHeaderSize = MemoryLayout<fib_rule_hdr>.size  // 12

    // ---- address families (#define → Int32) --------------------------------------------------
    static let afUnspec = UInt8(AF_UNSPEC)
    static let afInet = UInt8(AF_INET)
    static let afInet6 = UInt8(AF_INET6)

    // ---- links (linux/if_link.h, net/if.h) -------------------------------------------------
    static let iflaAddress = UInt16(IFLA_ADDRESS)
    static let iflaIfname = UInt16(IFLA_IFNAME)
    static let iflaMTU = UInt16(IFLA_MTU)
    static let iflaOperstate = UInt16(IFLA_OPERSTATE)
    static let iflaLinkinfo = UInt16(IFLA_LINKINFO)
    static let iflaInfoKind = UInt16(IFLA_INFO_KIND)
    static let iflaInfoData = UInt16(IFLA_INFO_DATA)
    /// linux/veth.h (not included by the CNetlink shim): `VETH_INFO_PEER = 1`.
    static let vethInfoPeer: UInt16 = 1
    static let iffUp = UInt32(IFF_UP)

    // ---- addresses (linux/if_addr.h) ---------------------------------------------------------
    static let ifaAddress = UInt16(IFA_ADDRESS)
    static let ifaLocal = UInt16(IFA_LOCAL)
    static let ifaFlags = UInt16(IFA_FLAGS)
    static let ifaFNodad = UInt8(IFA_F_NODAD)

    // ---- routes (enum rtattr_type_t and friends) ---------------------------------------------
    static let rtaDst = UInt16(RTA_DST.rawValue)
    static let rtaOif = UInt16(RTA_OIF.rawValue)
    static let rtaGateway = UInt16(RTA_GATEWAY.rawValue)
    static let rtaPriority = UInt16(RTA_PRIORITY.rawValue)
    static let rtaPrefsrc = UInt16(RTA_PREFSRC.rawValue)
    static let rtaTable = UInt16(RTA_TABLE.rawValue)
    static let tableUnspec = UInt32(RT_TABLE_UNSPEC.rawValue)
    static let tableMain = UInt32(RT_TABLE_MAIN.rawValue)
    static let tableLocal = UInt32(RT_TABLE_LOCAL.rawValue)
    static let scopeUniverse = UInt8(RT_SCOPE_UNIVERSE.rawValue)
    static let scopeLink = UInt8(RT_SCOPE_LINK.rawValue)
    static let scopeHost = UInt8(RT_SCOPE_HOST.rawValue)
    static let scopeNowhere = UInt8(RT_SCOPE_NOWHERE.rawValue)
    static let typeUnicast = UInt8(RTN_UNICAST)
    static let typeLocal = UInt8(RTN_LOCAL)
    static let typeBlackhole = UInt8(RTN_BLACKHOLE)
    static let typeUnreachable = UInt8(RTN_UNREACHABLE)
    static let typeProhibit = UInt8(RTN_PROHIBIT)
    static let protoKernel = UInt8(RTPROT_KERNEL)
    static let protoBoot = UInt8(RTPROT_BOOT)
    static let protoStatic = UInt8(RTPROT_STATIC)
    static let flagCloned = UInt32(RTM_F_CLONED)

    // ---- rules (linux/fib_rules.h) ---------------------------------------------------------
    static let fraDst = UInt16(FRA_DST)
    static let fraSrc = UInt16(FRA_SRC)
    static let fraPriority = UInt16(FRA_PRIORITY)
    static let fraFwmark = UInt16(FRA_FWMARK)
    static let fraFwmask = UInt16(FRA_FWMASK)
    static let fraTable = UInt16(FRA_TABLE)
    static let actionToTable = UInt8(FR_ACT_TO_TBL)

    // ---- multicast groups (enum rtnetlink_groups) --------------------------------------------
    static let groupIPv4Route = UInt32(RTNLGRP_IPV4_ROUTE.rawValue)
    static let groupIPv6Route = UInt32(RTNLGRP_IPV6_ROUTE.rawValue)
}
