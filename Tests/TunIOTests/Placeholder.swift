import Testing
import TestSupport
import Glibc

@Test(.enabled(if: isRoot)) func namespaceHelperWorks() throws {
    let ns = try TestNamespace("tsup")
    defer { ns.close() }
    let inside = try ns.run { () -> String in
        var buf = [CChar](repeating: 0, count: 256)
        let n = readlink("/proc/thread-self/ns/net", &buf, 255)
        return String(decoding: buf[0..<Int(n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    let outside = shell("readlink /proc/self/ns/net").output
    #expect(!inside.isEmpty && !outside.contains(inside))
    #expect(ns.sh("ip -br link").output.contains("lo"))
}
