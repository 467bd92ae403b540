using Interceptor.Core.Policy;

namespace Interceptor.Tests.TestDoubles;

/// <summary>
/// The kernel's suspended set and the suspension alert, recorded instead of run: what is suspended now, every call in
/// order, and every alert with its counts. The one fake kernel of the unit tests.
/// </summary>
internal sealed class RecordingKernel : IKernelSuspension, ISuspensionAlert
{
    private readonly List<uint> _suspended = [];

    /// <summary>"suspend UID", "unsuspend UID", "alert UID SOURCE", in call order.</summary>
    public List<string> Calls { get; } = [];

    public List<(Suspension Suspension, IReadOnlyDictionary<string, string> Counts)> Alerts { get; } = [];

    public IReadOnlyList<IReadOnlyDictionary<string, string>> AlertCounts
    {
        get
        {
            lock (Calls)
            {
                return [.. Alerts.Select(a => a.Counts)];
            }
        }
    }

    /// <summary>The uids in the kernel's set now.</summary>
    public IReadOnlyList<uint> Suspended
    {
        get
        {
            lock (Calls)
            {
                return [.. _suspended];
            }
        }
    }

    public Task SuspendAsync(uint uid, CancellationToken cancellationToken)
    {
        lock (Calls)
        {
            Calls.Add($"suspend {uid}");
            _suspended.Add(uid);
        }

        return Task.CompletedTask;
    }

    public Task UnsuspendAsync(uint uid, CancellationToken cancellationToken)
    {
        lock (Calls)
        {
            Calls.Add($"unsuspend {uid}");
            _suspended.Remove(uid);
        }

        return Task.CompletedTask;
    }

    public Task NotifyAsync(Suspension suspension, IReadOnlyDictionary<string, string> counts, CancellationToken cancellationToken)
    {
        lock (Calls)
        {
            Calls.Add($"alert {suspension.Uid} {suspension.Source}");
            Alerts.Add((suspension, counts));
        }

        return Task.CompletedTask;
    }
}
