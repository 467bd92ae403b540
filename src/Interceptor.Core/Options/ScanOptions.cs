namespace Interceptor.Core.Options;

/// <summary>Which content scanner judges each message before the upstream gets its end (issue 16).</summary>
public enum ScanEngine
{
    /// <summary>No scanning: messages stream to the upstream as they arrive (bounded memory, no spool).</summary>
    None,

    /// <summary>SpamAssassin's spamd, spoken to in its own protocol (<c>SYMBOLS SPAMC/1.5</c>).</summary>
    Spamd,

    /// <summary>rspamd's HTTP protocol (<c>POST /checkv2</c>).</summary>
    Rspamd,
}

/// <summary>What happens to a message the scanner could not judge (down, slow, answering garbage).</summary>
public enum ScanErrorAction
{
    /// <summary><c>451 4.7.0</c>: the client keeps the message and retries; nothing goes out unscanned.</summary>
    TempFail,

    /// <summary>Relay it unscanned (logged).</summary>
    Accept,

    /// <summary>Hold it for review, as a message in the hold band.</summary>
    Hold,
}

/// <summary>Content scanning: <c>Scan.*</c>. Off by default.</summary>
public sealed record ScanOptions
{
    public ScanEngine Engine { get; init; } = ScanEngine.None;

    /// <summary>
    /// spamd: "host:port" or "unix:/path"; rspamd: "http://host:port" or "unix:/path". Empty: the engine's usual local
    /// address (spamd 127.0.0.1:783, rspamd http://127.0.0.1:11333).
    /// </summary>
    public string Endpoint { get; init; } = "";

    /// <summary>The longest one scan may take, connect to verdict; then <see cref="OnError"/>.</summary>
    [ConfigurationKey("TimeoutSeconds")]
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Larger messages are not scanned (logged): scanners are slow on them and spam is small.</summary>
    [ConfigurationKey("MaxBytes")]
    public ByteSize MaxSize { get; init; } = ByteSize.FromBytes(1L << 20);

    /// <summary>A score at or above this refuses the message (550 5.7.1).</summary>
    public double RejectScore { get; init; } = 15;

    /// <summary>A score at or above this (and under <see cref="RejectScore"/>) holds the message for review; 0: never hold.</summary>
    public double HoldScore { get; init; } = 8;

    public ScanErrorAction OnError { get; init; } = ScanErrorAction.TempFail;

    /// <summary>
    /// The most scans one user has at the scanner at once; more wait for one of theirs to end (within the timeout). The
    /// scanner is shared: one customer's parallel sessions must not hold all its workers while everyone else times out.
    /// </summary>
    public int MaxConcurrentPerUser { get; init; } = 2;
}
