import Glibc
import Netlink
import TestSupport
import Testing

@Test func messageBuilderProducesAlignedAttributes() {
    var m = NetlinkMessage(type: 16, flags: 0x5, extraHeaderSize: 16)
    m.put(3, string: "svr0")
    m.put(4, u32: 1400)
    m.setSequence(0)
    // nlmsghdr(16) + ifinfomsg(16) + "svr0\0" attr (4+5 → 12) + u32 attr (8) = 52
    #expect(m.length == 52)
    #expect(hexString(m.bytes) ==
        "34000000" + "1000" + "0500" + "00000000" + "00000000"
        + String(repeating: "00", count: 16)
        + "0900" + "0300" + "73767230" + "00000000"
        + "0800" + "0400" + "78050000")
}

@Test(.enabled(if: isRoot)) func kernelErrorCarriesErrnoAndExtendedAck() throws {
    let ns = try TestNamespace("nls")
    defer { ns.close() }
    try ns.run {
        let sock = try NetlinkSocket(.route)
        // RTM_NEWLINK for a missing ifindex: the kernel answers ENODEV.
        var m = NetlinkMessage(type: 16, flags: NetlinkFlags.ack, extraHeaderSize: 16)
        m.withExtraHeader(as: (UInt8, UInt8, UInt16, Int32, UInt32, UInt32).self) { $0.3 = 9999 }
        do {
            try sock.request(&m, operation: "set link 9999")
            Issue.record("the kernel accepted a link that does not exist")
        } catch let error as NetlinkError {
            #expect(error.errno == ENODEV)
            #expect(error.isNotFound)
            #expect(error.description.hasPrefix("set link 9999: "))
        }
    }
}
