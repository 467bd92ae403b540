using Interceptor.Core.Options;
using Interceptor.Core.Pool;
using Interceptor.Daemon.Pool;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Daemon.Pool;

/// <summary>A pool of a primary and a standby, an observer whose store and alert command are lists, and a hand-moved clock.</summary>
internal sealed class PoolFixture : IAsyncDisposable
{
    public static readonly SmarthostOptions[] Relays =
    [
        new() { Name = "relay1", Host = "relay1.example", EgressAddress = "198.51.100.10" },
        new() { Name = "relay2", Host = "relay2.example", Role = SmarthostRole.Standby, EgressAddress = "198.51.100.20" },
    ];

    private readonly Lock _lock = new();
    private readonly List<IReadOnlyList<RelayState>> _saves = [];
    private readonly List<(string Event, IReadOnlyDictionary<string, string> Facts)> _alerts = [];

    public PoolFixture(int failingSaves = 0)
    {
        FailingSaves = failingSaves;
        Pool = new RelayPool(Relays, new BurnOptions(), [], Clock);
        Observer = new PoolObserver(SaveAsync, AlertAsync, new RelayHourCounter(Clock), Metrics, Logger, Clock);
    }

    public ManualClock Clock { get; } = new(new DateTimeOffset(2026, 12, 2, 3, 0, 0, TimeSpan.Zero));

    public RecordingLogger Logger { get; } = new();

    public PoolMetrics Metrics { get; } = new();

    public RelayPool Pool { get; }

    public PoolObserver Observer { get; }

    public int FailingSaves { get; set; }

    public IReadOnlyList<IReadOnlyList<RelayState>> Saves
    {
        get
        {
            lock (_lock)
            {
                return [.. _saves];
            }
        }
    }

    public IReadOnlyList<(string Event, IReadOnlyDictionary<string, string> Facts)> Alerts
    {
        get
        {
            lock (_lock)
            {
                return [.. _alerts];
            }
        }
    }

    /// <summary>Waits until <paramref name="done"/> holds (the observer's loops run on their own).</summary>
    public static async Task WaitForAsync(Func<bool> done, string what)
    {
        for (var i = 0; i < 500 && !done(); i++)
        {
            await Task.Delay(10);
        }

        Assert.That(done(), Is.True, what);
    }

    public async ValueTask DisposeAsync()
    {
        await Observer.DisposeAsync();
        Metrics.Dispose();
    }

    private Task SaveAsync(IReadOnlyList<RelayState> states, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (FailingSaves > 0)
            {
                FailingSaves--;
                throw new Interceptor.Core.Policy.StoreUnavailableException("disk I/O error");
            }

            _saves.Add(states);
        }

        return Task.CompletedTask;
    }

    private Task AlertAsync(string eventName, IReadOnlyDictionary<string, string> facts, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            _alerts.Add((eventName, facts));
        }

        return Task.CompletedTask;
    }
}
