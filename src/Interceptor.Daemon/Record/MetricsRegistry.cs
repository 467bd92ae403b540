using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Interceptor.Core.Events;
using Interceptor.Core.Policy;
using Interceptor.Daemon.Intercept;
using Interceptor.Daemon.Maintenance;
using Interceptor.Smtp.Upstream;
using Interceptor.Store;

namespace Interceptor.Daemon.Record;

/// <summary>
/// The daemon's Prometheus metrics, kept with lock-free counters and rendered in the text exposition format.
/// Per-user series only when the admin enabled them (Metrics.PerUser): one label value per sending user.
/// </summary>
public sealed class MetricsRegistry : ITransactionRecorder, IPolicyObserver
{
    /// <summary>
    /// Where an upstream session failed (a network fault, a timeout; not an SMTP reply): the stages counted by
    /// smtpi_upstream_failures_total.
    /// </summary>
    public static readonly string[] UpstreamFailureStages = ["connect", "command", "data"];

    /// <summary>The reasons smtpi_connections_refused_total counts (ConnectionAttributor, UidAttribution).</summary>
    public static readonly string[] ConnectionRefusalReasons = ["not_redirected", "local_destination", "owner_unknown", "unknown_uid"];

    // Owner lookups take microseconds; buckets from 5 µs to 10 ms.
    private static readonly double[] LookupBuckets = [0.000005, 0.00001, 0.00002, 0.00005, 0.0001, 0.0005, 0.001, 0.01];
    private readonly ConcurrentDictionary<string, long> _counters = new();
    private readonly long[] _lookupBuckets = new long[LookupBuckets.Length + 1];
    private long _lookupCount;
    private long _lookupSumTicks;
    private readonly bool _perUser;

    /// <summary>
    /// Every labelled counter the alert rules and the dashboard use exists from the start at 0: a series that appears
    /// only with its first event makes rate() miss that event and leaves absent-series alerts guessing.
    /// </summary>
    public MetricsRegistry(bool perUser)
    {
        _perUser = perUser;
        foreach (var outcome in Enum.GetValues<TransactionOutcome>())
        {
            Add($"smtpi_transactions_total{{outcome=\"{outcome.ToString().ToLowerInvariant()}\"}}", 0);
        }

        foreach (var kind in Enum.GetValues<RefusalKind>())
        {
            Add($"smtpi_messages_refused_total{{reason=\"{kind}\"}}", 0);
        }

        foreach (var source in Enum.GetValues<SuspensionSource>())
        {
            Add($"smtpi_suspensions_total{{source=\"{source.ToString().ToLowerInvariant()}\"}}", 0);
        }

        foreach (var reason in ConnectionRefusalReasons)
        {
            Add($"smtpi_connections_refused_total{{reason=\"{reason}\"}}", 0);
        }

        foreach (var replyClass in new[] { "2xx", "4xx", "5xx", "none" })
        {
            Add($"smtpi_upstream_replies_total{{class=\"{replyClass}\"}}", 0);
        }

        foreach (var stage in UpstreamFailureStages)
        {
            Add($"smtpi_upstream_failures_total{{stage=\"{stage}\"}}", 0);
        }

        foreach (var name in new[] { "smtpi_messages_relayed_total", "smtpi_recipients_relayed_total", "smtpi_bytes_relayed_total", "smtpi_store_prunes_total", "smtpi_store_quota_history_lost_total" })
        {
            Add(name, 0);
        }
    }

    /// <summary>The listener's upstream session cache, once it exists: its idle and reuse figures are rendered too.</summary>
    public UpstreamConnectionCache? Upstreams { get; set; }

    /// <summary>The table check, once it exists: lockdown (issue 12.1) and restorations of a changed table are rendered.</summary>
    public TableWatchdog? Watchdog { get; set; }

    /// <summary>The state store's health (no I/O), once the store is open.</summary>
    public Func<StoreHealth>? Store { get; set; }

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
        if (_perUser)
        {
            Add($"smtpi_user_transactions_total{{user=\"{Escape(transaction.User)}\",outcome=\"{outcome}\"}}", 1);
        }
    }

    public void Refused(RefusalKind kind, uint uid, string user)
    {
        Add($"smtpi_messages_refused_total{{reason=\"{kind}\"}}", 1);
        if (_perUser)
        {
            Add($"smtpi_user_refusals_total{{user=\"{Escape(user)}\",reason=\"{kind}\"}}", 1);
        }
    }

    public void RecordConnectionRefused(string reason) => Add($"smtpi_connections_refused_total{{reason=\"{reason}\"}}", 1);

    public void Suspended(Suspension suspension) => Add($"smtpi_suspensions_total{{source=\"{suspension.Source.ToString().ToLowerInvariant()}\"}}", 1);

    public void UpstreamFailed(string stage) => Add($"smtpi_upstream_failures_total{{stage=\"{stage}\"}}", 1);

    /// <summary>StoreRetention pruned the store to hold it under State.MaxBytes; <paramref name="quotaHistoryLost"/>: rows quotas count went too.</summary>
    public void StorePruned(bool quotaHistoryLost)
    {
        Add("smtpi_store_prunes_total", 1);
        if (quotaHistoryLost)
        {
            Add("smtpi_store_quota_history_lost_total", 1);
        }
    }

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

        if (Watchdog is { } watchdog)
        {
            text.Append("# TYPE smtpi_listener_lockdown gauge\nsmtpi_listener_lockdown ").Append(watchdog.Lockdown is null ? 0 : 1).Append('\n');
            text.Append("# TYPE smtpi_table_restorations_total counter\nsmtpi_table_restorations_total ")
                .Append(watchdog.Restorations.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }

        if (Store?.Invoke() is { } store)
        {
            // Healthy: the last batch was committed and the file is still ours; 0 while writes fail (mail is then still
            // relayed but not recorded, so quotas undercount after a restart).
            text.Append("# TYPE smtpi_store_healthy gauge\nsmtpi_store_healthy ").Append(store.LastFailure is null && !store.Broken ? 1 : 0).Append('\n');
            text.Append("# TYPE smtpi_store_commits_total counter\nsmtpi_store_commits_total ")
                .Append(store.Commits.ToString(CultureInfo.InvariantCulture)).Append('\n');
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
