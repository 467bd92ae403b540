using Interceptor.Core.Policy;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Record;

/// <summary>Deletes transactions and refusals past State.RetentionDays, hourly, so the state never grows without bound.</summary>
public sealed class StoreRetention(IStateStore store, TimeSpan keep, TimeProvider time, ILogger logger) : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;

    public void Start() => _loop = Task.Run(LoopAsync);

    private async Task LoopAsync()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromHours(1));
        try
        {
            do
            {
                try
                {
                    await store.PruneAsync(time.GetUtcNow() - keep, _stop.Token);
                }
                catch (StoreUnavailableException e)
                {
                    logger.LogError("pruning the state store failed: {Reason}", e.Message);
                }
            }
            while (await timer.WaitForNextTickAsync(_stop.Token));
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            await _loop;
        }

        _stop.Dispose();
    }
}
