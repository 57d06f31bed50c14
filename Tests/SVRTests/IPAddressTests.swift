import SVR
import Testing

@Test func ipv4ParseAndPrint() {
    #expect(IPv4Address("10.1.1.10")?.value == 0x0A01_010A)
    #expect(IPv4Address("10.1.1.10")?.description == "10.1.1.10")
    #expect(IPv4Address("10.1.1") == nil)
    #expect(IPv4Address("256.1.1.1") == nil)
}

@Test func ipv6ParseAndPrint() throws {
    let a = try #require(IPv6Address("2001:db8:1::10"))
    #expect(a.high == 0x2001_0db8_0001_0000 && a.low == 0x10)
    #expect(a.description == "2001:db8:1::10")
    #expect(IPv6Address("2001:db8:::1") == nil)
}

@Test func prefixesMaskContainAndOverlap() throws {
    let p = try #require(IPPrefix("10.1.2.3/16"))
    #expect(p.description == "10.1.0.0/16")
    #expect(p.contains(IPAddress("10.1.200.1")!))
    #expect(!p.contains(IPAddress("10.2.0.1")!))
    #expect(p.overlaps(IPPrefix("10.1.5.0/24")!))
    #expect(!p.overlaps(IPPrefix("10.2.0.0/16")!))
    #expect(IPPrefix("10.0.0.0/33") == nil)
    #expect(IPPrefix("10.0.0.0/x") == nil)
    #expect(IPPrefix("2001:db8::1/32")?.description == "2001:db8::/32")
    #expect(IPPrefix("192.0.2.7")?.length == 32)
}
