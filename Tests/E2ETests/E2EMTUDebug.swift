import Glibc
import TestSupport
import Testing

@Suite(.serialized, .enabled(if: e2eEnabled, "root"))
struct E2EMTUDebug {
    @Test func debugMTU() throws {
        let lab = try E2ELab(transport: .native, midLink: true)
        defer { lab.close() }
        try lab.start()
        try lab.startUDPEcho()
        let scripts = lab.work
        try writeFile("\(scripts)/bigudp.py", E2EMTUTests.bigUDPScript)
        try writeFile("\(scripts)/df.py", E2EMTUTests.dfScript)
        try lab.setPathMTU(1280)
        try lab.helper(lab.wan2!, "tcpdump -l -n -vv -i svrw1 icmp", name: "td2")
        try lab.helper(lab.wan, "tcpdump -l -n -vv -i svrw0 icmp", name: "td1")
        usleep(500_000)
        let df = lab.client.sh("\(python3) \(scripts)/df.py \(Addr.server)")
        print("DF: \(df.output)")
        let udp = lab.client.sh("\(python3) \(scripts)/bigudp.py \(Addr.server) 1400,4000,1400")
        print("UDP: \(udp.output)")
        for i in 0..<2 { print(lab.show(i, "stats").output) }
        print(lab.shell2("cat \(lab.work)/td2.log | head -30; echo ---; cat \(lab.work)/td1.log | head -30"))
        print(lab.shell2("ip netns exec \(lab.wan.name) nstat -az | grep -i -E 'IcmpOut|FragFail|OutDest'"))
    }
}
extension E2ELab { func shell2(_ c: String) -> String { shell(c).output } }
