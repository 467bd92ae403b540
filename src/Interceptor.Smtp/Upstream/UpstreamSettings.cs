using Interceptor.Core.Options;

namespace Interceptor.Smtp.Upstream;

/// <summary>How the relay talks to one upstream: our name and the bounded waits.</summary>
public sealed record UpstreamSettings(
    string HeloName,
    TimeSpan ConnectTimeout,
    TimeSpan ReplyTimeout,
    TimeSpan DataReplyTimeout,
    bool UseStartTls = true)
{
    /// <summary>Whether and how long sessions are kept for the next client; off unless configured.</summary>
    public UpstreamReuse Reuse { get; init; } = UpstreamReuse.Off;

    /// <summary>Set for a relay whose TLS is required and verified; null: opportunistic and unverified, as between MTAs.</summary>
    public UpstreamTlsVerification? VerifiedTls { get; init; }

    public static UpstreamSettings From(RelayOptions relay) => new(
        relay.HeloName,
        relay.ConnectTimeout,
        relay.ReplyTimeout,
        relay.DataReplyTimeout)
    {
        Reuse = new UpstreamReuse(
            relay.ReuseConnections,
            relay.ReuseIdleTime,
            relay.ReuseMaxAge,
            relay.ReuseMaxMessages,
            relay.ReuseMaxIdlePerDestination,
            relay.ReuseMaxIdleTotal),
    };
}

/// <summary>What the upstream's EHLO reply advertised.</summary>
public sealed record UpstreamCapabilities(
    bool Extended,
    bool Size,
    long? MaxSize,
    bool EightBitMime,
    bool SmtpUtf8,
    bool StartTls,
    bool Pipelining)
{
    public static readonly UpstreamCapabilities Basic = new(false, false, null, false, false, false, false);

    public static UpstreamCapabilities FromEhlo(IReadOnlyList<string> lines)
    {
        bool Has(string keyword) => lines.Skip(1).Any(l =>
            l.Equals(keyword, StringComparison.OrdinalIgnoreCase) ||
            l.StartsWith(keyword + " ", StringComparison.OrdinalIgnoreCase));

        long? maxSize = null;
        var sizeLine = lines.Skip(1).FirstOrDefault(l => l.StartsWith("SIZE", StringComparison.OrdinalIgnoreCase));
        if (sizeLine is not null && long.TryParse(sizeLine.AsSpan(4).Trim(), out var parsed) && parsed > 0)
        {
            maxSize = parsed;
        }

        return new UpstreamCapabilities(
            Extended: true,
            Size: Has("SIZE"),
            MaxSize: maxSize,
            EightBitMime: Has("8BITMIME"),
            SmtpUtf8: Has("SMTPUTF8"),
            StartTls: Has("STARTTLS"),
            Pipelining: Has("PIPELINING"));
    }
}
