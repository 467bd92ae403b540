using System.Diagnostics.Metrics;
using Interceptor.Core.Metrics;

namespace Interceptor.Core.Policy;

/// <summary>
/// The policy's figures (meter <c>Interceptor.Policy</c>): messages refused by reason, suspensions by source, and, when
/// the admin enabled them (Metrics.PerUser), refusals per sending user.
/// </summary>
public sealed class PolicyMetrics : IPolicyObserver, IMetricsSource, IDisposable
{
    public const string MeterName = "Interceptor.Policy";

    private static readonly LabelValues<RefusalKind> Reasons = LabelValues.AsDeclared<RefusalKind>();
    private static readonly LabelValues<SuspensionSource> Sources = LabelValues.LowerCase<SuspensionSource>();
    private readonly Counter<long> _refused;
    private readonly Counter<long>? _userRefusals;
    private readonly Counter<long> _suspensions;

    public PolicyMetrics(bool perUser)
    {
        _refused = Meter.CreateCounter<long>("smtpi_messages_refused_total", description: "Messages (or connections) refused by this host's own policy, by reason");
        // Only when asked for: each per-user metric reserves room for its cardinality limit in the exporter.
        _userRefusals = !perUser ? null : Meter.CreateCounter<long>("smtpi_user_refusals_total", description: "Policy refusals per sending user (Metrics.PerUser)");
        _suspensions = Meter.CreateCounter<long>("smtpi_suspensions_total", description: "Users suspended, by source (admin or automatic)");
    }

    public Meter Meter { get; } = new(MeterName);

    public void Refused(RefusalKind kind, uint uid, string user)
    {
        var reason = new KeyValuePair<string, object?>("reason", Reasons[kind]);
        _refused.Add(1, reason);
        _userRefusals?.Add(1, new KeyValuePair<string, object?>("user", user), reason);
    }

    public void Suspended(Suspension suspension) => _suspensions.Add(1, new KeyValuePair<string, object?>("source", Sources[suspension.Source]));

    public void RecordZeros()
    {
        foreach (var reason in Reasons.All)
        {
            _refused.Add(0, new KeyValuePair<string, object?>("reason", reason));
        }

        foreach (var source in Sources.All)
        {
            _suspensions.Add(0, new KeyValuePair<string, object?>("source", source));
        }
    }

    public void Dispose() => Meter.Dispose();
}
