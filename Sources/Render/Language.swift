import Timeline

extension Language {
    /// "[Server]" / "[サーバー]" for the lab's actors; other actor names pass through.
    public func column(_ actor: String) -> String {
        switch (self, actor) {
        case (.en, "server"): "[Server]"
        case (.en, "client"): "[Client]"
        case (.ja, "server"): "[サーバー]"
        case (.ja, "client"): "[クライアント]"
        // An IPv6 endpoint ("[::1]:49152") already wears brackets.
        default: actor.hasPrefix("[") ? actor : "[\(actor)]"
        }
    }

    public func actorName(_ actor: String) -> String {
        switch (self, actor) {
        case (.ja, "server"): "サーバー"
        case (.ja, "client"): "クライアント"
        default: actor
        }
    }

    public var kernelPrefix: String { self == .ja ? "カーネルが送信" : "kernel" }
    public var statesLabel: String { self == .ja ? "TCP状態" : "TCP state" }
    public var noPackets: String { self == .ja ? "(パケットなし)" : "(no packets)" }
    public var stepLabel: String { self == .ja ? "ステップ" : "step" }
    public var commentLabel: String { self == .ja ? "コメント" : "comment" }
}

/// Terminal display width: East Asian wide characters take two cells.
public func displayWidth(_ s: String) -> Int {
    // Printable ASCII, most labels: one cell a byte.
    var ascii = 0
    for b in s.utf8 {
        guard b >= 0x20 && b < 0x7f else { return scalarWidth(s) }
        ascii += 1
    }
    return ascii
}

private func scalarWidth(_ s: String) -> Int {
    var w = 0
    for scalar in s.unicodeScalars {
        let v = scalar.value
        if v < 0x20 || (v >= 0x7f && v < 0xa0) { continue }
        if (0x1100...0x115f).contains(v) || (0x2e80...0xa4cf).contains(v) || (0xac00...0xd7a3).contains(v)
            || (0xf900...0xfaff).contains(v) || (0xfe30...0xfe4f).contains(v) || (0xff00...0xff60).contains(v)
            || (0xffe0...0xffe6).contains(v) || (0x1f300...0x1faff).contains(v) || (0x20000...0x3fffd).contains(v)
        {
            w += 2
        } else if (0x300...0x36f).contains(v) || v == 0x200b {
            continue
        } else {
            w += 1
        }
    }
    return w
}

/// Pads with spaces to `width` display cells.
func pad(_ s: String, _ width: Int) -> String {
    let w = displayWidth(s)
    return w >= width ? s : s + String(repeating: " ", count: width - w)
}
