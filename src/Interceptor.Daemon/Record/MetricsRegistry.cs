using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Interceptor.Core.Events;
using Interceptor.Core.Policy;
using Interceptor.Smtp.Upstream;

namespace Interceptor.Daemon.Record;

/// <summary>
/// The daemon's Prometheus metrics, kept with lock-free counters and rendered in the text exposition format.
/// Per-user series only when the admin enabled them (Metrics.PerUser): one label value per sending user.
/// </summary>
public sealed class MetricsRegistry(bool perUser) : ITransactionRecorder, IPolicyObserver
{
    // Owner lookups take microseconds; buckets from 5 µs to 10 ms.
    private static readonly double[] LookupBuckets = [0.000005, 0.00001, 0.00002, 0.00005, 0.0001, 0.0005, 0.001, 0.01];
    private readonly ConcurrentDictionary<string, long> _counters = new();
    private readonly long[] _lookupBuckets = new long[LookupBuckets.Length + 1];
    private long _lookupCount;
    private long _lookupSumTicks;

    /// <summary>The listener's upstream session cache, once it exists: its idle and reuse figures are rendered too.</summary>
    public UpstreamConnectionCache? Upstreams { get; set; }

    public void Record(TransactionEvent transaction)
    {
        var outcome = transaction.Outcome.ToString().ToLowerInvariant();
        Add($"smtpi_transactions_total{{outcome=\"{outcome}\"}}", 1);
        if (transaction.Outcome == TransactionOutcome.Delivered)
        {
            Add("smtpi_messages_relayed_total", 1);
            Add("smtpi_recipients_relayed_total", transaction.RecipientCount);
            Add("smtpi_bytes_relayed_total", transaction.SizeBytes);
        }

        var replyClass = transaction.Reply.Length > 0 && char.IsAsciiDigit(transaction.Reply[0]) ? $"{transaction.Reply[0]}xx" : "none";
        Add($"smtpi_upstream_replies_total{{class=\"{replyClass}\"}}", 1);
        if (perUser)
        {
            Add($"smtpi_user_transactions_total{{user=\"{Escape(transaction.User)}\",outcome=\"{outcome}\"}}", 1);
        }
    }

    public void Refused(RefusalKind kind, uint uid, string user)
    {
        Add($"smtpi_messages_refused_total{{reason=\"{kind}\"}}", 1);
        if (perUser)
        {
            Add($"smtpi_user_refusals_total{{user=\"{Escape(user)}\",reason=\"{kind}\"}}", 1);
        }
    }

    public void RecordConnectionRefused(string reason) => Add($"smtpi_connections_refused_total{{reason=\"{reason}\"}}", 1);

    public void Suspended(Suspension suspension) => Add($"smtpi_suspensions_total{{source=\"{suspension.Source.ToString().ToLowerInvariant()}\"}}", 1);

    public void RecordOwnerLookup(TimeSpan elapsed)
    {
        var seconds = elapsed.TotalSeconds;
        var bucket = 0;
        while (bucket < LookupBuckets.Length && seconds > LookupBuckets[bucket])
        {
            bucket++;
        }

        Interlocked.Increment(ref _lookupBuckets[bucket]);
        Interlocked.Increment(ref _lookupCount);
        Interlocked.Add(ref _lookupSumTicks, elapsed.Ticks);
    }

    public string Render(int activeSessions)
    {
        var text = new StringBuilder();
        text.Append("# TYPE smtpi_active_sessions gauge\nsmtpi_active_sessions ").Append(activeSessions).Append('\n');
        if (Upstreams is { } upstreams)
        {
            text.Append("# TYPE smtpi_upstream_sessions_idle gauge\nsmtpi_upstream_sessions_idle ").Append(upstreams.IdleCount).Append('\n');
            text.Append("# TYPE smtpi_upstream_sessions_reused_total counter\nsmtpi_upstream_sessions_reused_total ")
                .Append(upstreams.Reused.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }

        foreach (var group in _counters.OrderBy(c => c.Key, StringComparer.Ordinal).GroupBy(c => c.Key.Split('{')[0]))
        {
            text.Append("# TYPE ").Append(group.Key).Append(" counter\n");
            foreach (var (name, value) in group)
            {
                text.Append(name).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
            }
        }

        text.Append("# TYPE smtpi_owner_lookup_seconds histogram\n");
        long cumulative = 0;
        for (var i = 0; i < LookupBuckets.Length; i++)
        {
            cumulative += Interlocked.Read(ref _lookupBuckets[i]);
            text.Append(CultureInfo.InvariantCulture, $"smtpi_owner_lookup_seconds_bucket{{le=\"{LookupBuckets[i]:0.######}\"}} {cumulative}\n");
        }

        var count = Interlocked.Read(ref _lookupCount);
        text.Append(CultureInfo.InvariantCulture, $"smtpi_owner_lookup_seconds_bucket{{le=\"+Inf\"}} {count}\n");
        text.Append(CultureInfo.InvariantCulture, $"smtpi_owner_lookup_seconds_sum {TimeSpan.FromTicks(Interlocked.Read(ref _lookupSumTicks)).TotalSeconds:0.#########}\n");
        text.Append(CultureInfo.InvariantCulture, $"smtpi_owner_lookup_seconds_count {count}\n");
        return text.ToString();
    }

    private void Add(string series, long amount) => _counters.AddOrUpdate(series, amount, (_, value) => value + amount);

    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);
}
