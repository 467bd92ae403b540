using System.Globalization;
using Interceptor.Core.Options;
using Interceptor.Daemon.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Hold;

/// <summary>
/// Delivers released messages and keeps Hold.Directory bounded. A hosted service: at start (so after a restart) and on
/// every release it delivers what is due; a deferred delivery is tried again with back-off (1, 2, 4 … minutes, at most an
/// hour apart) until Hold.ReleaseRetryHours after the release; a permanent refusal or the end of the retries marks it
/// failed, runs the alert (SMTPI_EVENT=hold-failed) and keeps it for the admin. Messages older than Hold.RetentionDays
/// (held, failed or delivered) are deleted and logged.
/// </summary>
public sealed class HoldReleaser(
    HoldStore store,
    IHeldDelivery delivery,
    HoldOptions options,
    TimeProvider time,
    ILogger logger,
    Func<HeldMessage, DeliveryOutcome, CancellationToken, Task>? delivered = null,
    Func<string, IReadOnlyDictionary<string, string>, CancellationToken, Task>? alert = null) : BackgroundService
{
    public static readonly TimeSpan FirstRetry = TimeSpan.FromMinutes(1);
    public static readonly TimeSpan LongestRetry = TimeSpan.FromHours(1);
    private static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan RetentionInterval = TimeSpan.FromHours(1);
    private static readonly TimeSpan WakeSettle = TimeSpan.FromMilliseconds(200);

    // Users whose released mail is delivered at once, each one message at a time: a customer's MX that answers each RCPT
    // just within the reply timeout and trickles the rest can make one attempt last hours, and every other user's
    // released mail waited behind it while the releaser delivered one message at a time.
    private const int MostUsersAtOnce = 8;

    private readonly SemaphoreSlim _wake = new(0, 1);
    private DateTimeOffset _lastRetention = DateTimeOffset.MinValue;
    private readonly Lock _workersLock = new();
    private readonly Dictionary<uint, Task> _workers = [];

    /// <summary>Marks a held or failed message released (due now) and wakes the delivery; null when no such message.</summary>
    /// <exception cref="InvalidOperationException">It is being delivered already, or was delivered.</exception>
    public async Task<HeldMessage?> ReleaseAsync(string id, uint adminUid, CancellationToken token)
    {
        var now = time.GetUtcNow();
        var released = await store.UpdateAsync(id, current => current.State is HoldState.Held or HoldState.Failed
            ? current with { State = HoldState.Released, ReleasedAt = now, Attempts = 0, NextAttempt = now, FinishedAt = null }
            : throw new InvalidOperationException($"held message {id} is {current.State.ToString().ToLowerInvariant()} already"), token);
        if (released is not null)
        {
            logger.Released(id, released.Uid, released.User, adminUid, released.OriginalDestination);
            Wake();
        }

        return released;
    }

    /// <summary>The back-off before attempt <paramref name="attempt"/> + 1.</summary>
    public static TimeSpan Backoff(int attempt) =>
        TimeSpan.FromTicks(Math.Min(LongestRetry.Ticks, FirstRetry.Ticks << Math.Clamp(attempt - 1, 0, 20)));

    /// <summary>
    /// One pass that waits for the deliveries it starts (a user whose delivery is running already gets none: that one
    /// takes her due mail), then retention when an hour has passed. Public for the tests (fake clock); the service itself
    /// does not wait for them (<see cref="StartDue"/>).
    /// </summary>
    public async Task RunOnceAsync(CancellationToken token)
    {
        await Task.WhenAll(StartDue(token));
        await ExpireIfDueAsync(token);
    }

    /// <summary>
    /// Starts delivering for each user with mail due and no delivery running (at most <see cref="MostUsersAtOnce"/> users;
    /// the rest at a later pass); returns the deliveries started.
    /// </summary>
    internal List<Task> StartDue(CancellationToken token)
    {
        var started = new List<Task>();
        var users = store.List().Where(IsDue).Select(r => r.Uid).Distinct().ToList();
        lock (_workersLock)
        {
            foreach (var uid in users)
            {
                if (_workers.Count >= MostUsersAtOnce)
                {
                    break;
                }

                if (!_workers.ContainsKey(uid))
                {
                    var worker = DeliverDueOfAsync(uid, token);
                    _workers[uid] = worker;
                    started.Add(worker);
                }
            }
        }

        return started;
    }

    private bool IsDue(HeldMessage record) => record.State == HoldState.Released && (record.NextAttempt ?? DateTimeOffset.MinValue) <= time.GetUtcNow();

    // One user's due messages, one after another, until none is due: the directory is listed once a round, and each
    // message read again just before its attempt (a release list of thousands would otherwise be read once a message).
    private async Task DeliverDueOfAsync(uint uid, CancellationToken token)
    {
        // Off the caller and its lock.
        await Task.Yield();
        var failed = false;
        try
        {
            // A round that attempts nothing (a listed record Find will not read) ends the worker instead of spinning.
            var attempted = true;
            List<string> round;
            while (attempted && (round = DueIdsOf(uid)).Count > 0)
            {
                attempted = false;
                foreach (var id in round)
                {
                    if (store.Find(id) is { } due && due.Uid == uid && IsDue(due))
                    {
                        attempted = true;
                        await AttemptAsync(due, token);
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The record could not be written (a full disk): the message stays due, and is tried again at the next
            // check (CheckInterval), not at once: woken now, it would be delivered again every few hundred milliseconds.
            failed = true;
            logger.UpkeepFailed(e.Message);
        }
        finally
        {
            lock (_workersLock)
            {
                _workers.Remove(uid);
            }
        }

        // Released between the last look and the removal: StartDue skipped this user, as a worker still ran.
        if (!failed && !token.IsCancellationRequested && DueIdsOf(uid).Count > 0)
        {
            Wake();
        }
    }

    private List<string> DueIdsOf(uint uid) => [.. store.List().Where(r => r.Uid == uid && IsDue(r)).OrderBy(r => r.NextAttempt ?? DateTimeOffset.MinValue).Select(r => r.Id)];

    private async Task ExpireIfDueAsync(CancellationToken token)
    {
        var now = time.GetUtcNow();
        if (now - _lastRetention >= RetentionInterval)
        {
            _lastRetention = now;
            await ExpireAsync(now, token);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Deliveries read held files between their socket awaits: off the socket threads (see ThreadPoolContext).
        await ThreadPoolContext.SwitchTo();
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    StartDue(stoppingToken);
                    await ExpireIfDueAsync(stoppingToken);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    logger.UpkeepFailed(e.Message);
                }

                if (await _wake.WaitAsync(CheckInterval, stoppingToken))
                {
                    // Woken by a release: `release --user` wakes once a message; one listing takes them all.
                    await Task.Delay(WakeSettle, stoppingToken);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping; a delivery cut short stays released and goes again after the restart.
        }

        Task[] running;
        lock (_workersLock)
        {
            running = [.. _workers.Values];
        }

        await Task.WhenAll(running).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    public override void Dispose()
    {
        _wake.Dispose();
        base.Dispose();
    }

    private void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already woken.
        }
        catch (ObjectDisposedException)
        {
            // Stopped: a worker ending after the service has nothing to wake.
        }
    }

    private async Task AttemptAsync(HeldMessage due, CancellationToken token)
    {
        DeliveryOutcome outcome;
        try
        {
            await using var message = store.OpenMessage(due.Id);
            outcome = await delivery.DeliverAsync(due, message, token);
        }
        catch (FileNotFoundException)
        {
            outcome = new DeliveryOutcome(DeliveryKind.Permanent, "the message file is missing from Hold.Directory", "");
        }
        catch (Exception e) when (e is not OperationCanceledException || !token.IsCancellationRequested)
        {
            // A record that cannot be delivered as it stands (an edited destination) or a delivery that gave up on its
            // own: retried with back-off like a deferral, then failed, so it neither stops the releaser nor keeps the
            // user's other released mail waiting behind it for ever.
            outcome = new DeliveryOutcome(DeliveryKind.Temporary, $"not delivered: {e.Message}", "");
        }

        var now = time.GetUtcNow();
        var attempt = due.Attempts + 1;
        var retryEnds = (due.ReleasedAt ?? now) + options.ReleaseRetry;
        var next = now + Backoff(attempt);
        var state = outcome.Kind switch
        {
            DeliveryKind.Delivered => HoldState.Delivered,
            DeliveryKind.Temporary when next <= retryEnds => HoldState.Released,
            _ => HoldState.Failed,
        };
        var updated = await store.UpdateAsync(due.Id, current => current.State != HoldState.Released ? null : current with
        {
            State = state,
            Attempts = attempt,
            LastResult = outcome.Result,
            NextAttempt = state == HoldState.Released ? next : null,
            FinishedAt = state == HoldState.Released ? null : now,
        }, token);

        switch (state)
        {
            case HoldState.Delivered:
                logger.Delivered(due.Id, due.Uid, due.User, attempt, outcome.Result);
                if (updated is not null)
                {
                    store.DropMessage(due.Id);
                }

                await AccountAsync(due, outcome, token);
                break;
            case HoldState.Released:
                logger.Deferred(due.Id, due.Uid, due.User, attempt, next, outcome.Result);
                break;
            default:
                var why = outcome.Kind == DeliveryKind.Permanent ? outcome.Result
                    : $"still deferred after Hold.ReleaseRetryHours ({options.ReleaseRetry.TotalHours:0} h): {outcome.Result}";
                logger.Failed(due.Id, due.Uid, due.User, attempt, why);
                await AlertAsync(due, attempt, why, token);
                break;
        }
    }

    private async Task AccountAsync(HeldMessage message, DeliveryOutcome outcome, CancellationToken token)
    {
        if (delivered is null)
        {
            return;
        }

        try
        {
            await delivered(message, outcome, token);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.AccountingFailed(message.Id, e.Message);
        }
    }

    private async Task AlertAsync(HeldMessage message, int attempts, string reason, CancellationToken token)
    {
        if (alert is null)
        {
            return;
        }

        var facts = new Dictionary<string, string>
        {
            ["SMTPI_UID"] = message.Uid.ToString(CultureInfo.InvariantCulture),
            ["SMTPI_USER"] = message.User,
            ["SMTPI_HOLD_ID"] = message.Id,
            ["SMTPI_HOLD_ATTEMPTS"] = attempts.ToString(CultureInfo.InvariantCulture),
            ["SMTPI_SINCE"] = message.HeldAt.ToString("O", CultureInfo.InvariantCulture),
        };
        await alert($"held message {message.Id} of {message.User} could not be delivered: {reason}", facts, token);
    }

    private async Task ExpireAsync(DateTimeOffset now, CancellationToken token)
    {
        var before = now - options.Retention;
        foreach (var old in store.List().Where(r => r.HeldAt < before && r.State != HoldState.Released))
        {
            if (await store.DeleteAsync(old.Id, token))
            {
                logger.Expired(old.Id, old.Uid, old.User, old.State, old.HeldAt, options.Retention.TotalDays);
            }
        }

        var strays = store.DeleteStrays(before);
        if (strays.Count > 0)
        {
            logger.StraysDeleted(strays.Count, string.Join(", ", strays));
        }
    }
}
