using System.Diagnostics.Metrics;
using Interceptor.Core.Events;
using Interceptor.Core.Metrics;
using Interceptor.Smtp.Upstream;

namespace Interceptor.Smtp.Metrics;

/// <summary>
/// The relay's figures (meter <c>Interceptor.Smtp</c>): each finished transaction by outcome and by the class of the
/// upstream's reply, what was relayed, upstream sessions failing (network faults and timeouts, not SMTP replies),
/// idle and reused upstream sessions, upstream connections against their cap; per sending user only when the admin enabled it (Metrics.PerUser).
/// Recording one transaction allocates nothing: label values are fixed strings, the tags live on the stack.
/// </summary>
public sealed class RelayMetrics : ITransactionRecorder, IMetricsSource, IDisposable
{
    public const string MeterName = "Interceptor.Smtp";

    /// <summary>Where an upstream session failed: the stages counted by smtpi_upstream_failures_total.</summary>
    public static readonly string[] UpstreamFailureStages = ["connect", "command", "data"];

    /// <summary>The reply classes that exist from the start (any other digit's class appears with its first reply).</summary>
    private static readonly string[] ReplyClasses = ["2xx", "4xx", "5xx", NoReply];
    private static readonly string[] DigitClasses = [.. Enumerable.Range(0, 10).Select(d => $"{d}xx")];
    private const string NoReply = "none";
    private static readonly LabelValues<TransactionOutcome> Outcomes = LabelValues.LowerCase<TransactionOutcome>();
    private readonly Counter<long> _transactions;
    private readonly Counter<long> _messages;
    private readonly Counter<long> _recipients;
    private readonly Counter<long> _bytes;
    private readonly Counter<long> _replies;
    private readonly Counter<long> _failures;
    private readonly Counter<long>? _userTransactions;

    public RelayMetrics(bool perUser)
    {
        _transactions = Meter.CreateCounter<long>("smtpi_transactions_total", description: "Finished mail transactions, by outcome");
        _messages = Meter.CreateCounter<long>("smtpi_messages_relayed_total", description: "Messages the upstream accepted");
        _recipients = Meter.CreateCounter<long>("smtpi_recipients_relayed_total", description: "Recipients of the messages the upstream accepted");
        _bytes = Meter.CreateCounter<long>("smtpi_bytes_relayed_total", description: "Bytes of the messages the upstream accepted");
        _replies = Meter.CreateCounter<long>("smtpi_upstream_replies_total", description: "The upstream's final reply to each transaction, by class (none: no reply)");
        _failures = Meter.CreateCounter<long>("smtpi_upstream_failures_total", description: "Upstream sessions lost to a network fault or a timeout, by stage");
        // Only when asked for: each per-user metric reserves room for its cardinality limit of series.
        // Only when asked for: each per-user metric reserves room for its cardinality limit in the exporter.
        _userTransactions = !perUser ? null : Meter.CreateCounter<long>("smtpi_user_transactions_total", description: "Finished mail transactions per sending user (Metrics.PerUser)");
        Meter.CreateObservableGauge("smtpi_upstream_sessions_idle", () => Observe(Upstreams?.IdleCount ?? -1), description: "Upstream sessions kept open for reuse");
        Meter.CreateObservableCounter("smtpi_upstream_sessions_reused_total", () => Observe(Upstreams?.Reused ?? -1), description: "Transactions that reused an idle upstream session");
        Meter.CreateObservableGauge("smtpi_upstream_connections_open", () => Observe(UpstreamDescriptors?.Open ?? -1), description: "Upstream connections open, held by sessions or idle for reuse");
        Meter.CreateObservableGauge("smtpi_upstream_connections_max", () => Observe(UpstreamDescriptors?.Capacity ?? -1), description: "The most upstream connections open at once (the descriptor budget's cap)");
        Meter.CreateObservableCounter("smtpi_upstream_connection_waits_total", () => Observe(UpstreamDescriptors?.Waits ?? -1), description: "New upstream connections that found the cap reached and waited for a slot");
        Meter.CreateObservableCounter("smtpi_upstream_connection_refusals_total", () => Observe(UpstreamDescriptors?.Refusals ?? -1), description: "New upstream connections refused: no slot came within the connect timeout");
    }

    public Meter Meter { get; } = new(MeterName);

    /// <summary>The listener's upstream session cache, once it exists: its idle and reuse figures are observed.</summary>
    public UpstreamConnectionCache? Upstreams { get; set; }

    /// <summary>The listener's cap on upstream connections, once it exists: open, cap, waits and refusals are observed.</summary>
    public UpstreamDescriptorGate? UpstreamDescriptors { get; set; }

    public void Record(TransactionEvent transaction)
    {
        var outcome = new KeyValuePair<string, object?>("outcome", Outcomes[transaction.Outcome]);
        _transactions.Add(1, outcome);
        if (transaction.Outcome == TransactionOutcome.Delivered)
        {
            _messages.Add(1);
            _recipients.Add(transaction.RecipientCount);
            _bytes.Add(transaction.SizeBytes);
        }

        _replies.Add(1, new KeyValuePair<string, object?>("class", ReplyClassOf(transaction.Reply)));
        _userTransactions?.Add(1, new KeyValuePair<string, object?>("user", transaction.User), outcome);
    }

    public void UpstreamFailed(string stage) => _failures.Add(1, new KeyValuePair<string, object?>("stage", stage));

    public void RecordZeros()
    {
        foreach (var outcome in Outcomes.All)
        {
            _transactions.Add(0, new KeyValuePair<string, object?>("outcome", outcome));
        }

        foreach (var replyClass in ReplyClasses)
        {
            _replies.Add(0, new KeyValuePair<string, object?>("class", replyClass));
        }

        foreach (var stage in UpstreamFailureStages)
        {
            _failures.Add(0, new KeyValuePair<string, object?>("stage", stage));
        }

        _messages.Add(0);
        _recipients.Add(0);
        _bytes.Add(0);
    }

    public void Dispose() => Meter.Dispose();

    /// <summary>No cache yet (-1): no series, as before the listener exists.</summary>
    private static IEnumerable<Measurement<long>> Observe(long value) => value < 0 ? [] : [new Measurement<long>(value)];

    /// <summary>"2xx", "4xx", "5xx"… by the reply's first digit; "none" when there was no reply (or not an SMTP one).</summary>
    internal static string ReplyClassOf(string reply) => reply.Length > 0 && char.IsAsciiDigit(reply[0]) ? DigitClasses[reply[0] - '0'] : NoReply;
}
