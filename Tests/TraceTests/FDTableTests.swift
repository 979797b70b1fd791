import Testing

@testable import SyscallTrace

@Suite struct FDTableTests {
    @Test func reusedNumbersFollowLifetimes() {
        var t = FDTable()
        t.opened(3, socket: 100)
        #expect(t[3] == .socket(100))
        t.closed(3)
        #expect(t[3] == nil)
        t[3] = .other
        t.opened(3, socket: 200)
        #expect(t[3] == .socket(200))
    }
}

@Suite struct FDTableLifetimeTests {
    @Test func dupAndForkShareTheSocketAndExecDropsCloseOnExec() {
        var t = FDTable()
        t.opened(3, socket: 100)
        t.duplicated(3, to: 7)
        #expect(t.descriptors(of: 100) == [3, 7])
        t.closed(3)
        #expect(t[7] == .socket(100))
        var child = t  // fork copies the table
        child.closed(7)
        #expect(t[7] == .socket(100) && child[7] == nil)
        t.opened(4, socket: 200)
        t.afterExec { $0 == 4 ? .socket(200) : nil }  // fd 7 was close-on-exec
        #expect(t.entries == [4: .socket(200)])
    }

    @Test func procLinksAreParsed() {
        #expect(SocketTable.parseLink("socket:[12345]") == .socket(12345))
        #expect(SocketTable.parseLink("/dev/null") == .other)
        #expect(SocketTable.parseLink("pipe:[9]") == .other)
    }
}
