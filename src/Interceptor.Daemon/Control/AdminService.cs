using System.Globalization;
using Interceptor.Core.Policy;
using Interceptor.Linux;
using Interceptor.Netfilter;
using Interceptor.Store;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Control;

/// <summary>
/// Carries out the admin verbs inside the running daemon, on the same registry, ledger and store the sessions use,
/// so a block takes effect for sessions already open and `limits` shows the live sliding windows.
/// </summary>
public sealed class AdminService(AdminContext context, ILogger logger)
{
    public static readonly TimeSpan DefaultUsersSince = TimeSpan.FromDays(1);

    /// <summary>`log` is bounded by its limit; a week reaches back far enough to find a quiet user's last message.</summary>
    public static readonly TimeSpan DefaultLogSince = TimeSpan.FromDays(7);

    public const int DefaultUsersLimit = 20;
    public const int DefaultLogLimit = 50;

    private readonly RelayAdmin _relays = new(context.Pool, logger);

    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);
    private static readonly TimeSpan Day = TimeSpan.FromDays(1);

    /// <summary>A user name or numeric uid → (uid, name), or null when unknown. The user database by default.</summary>
    internal Func<string, (uint Uid, string Name)?> ResolveUser { get; init; } = ResolveFromDatabase;

    public static string Version => typeof(AdminService).Assembly.GetName().Version?.ToString(3) ?? "unknown";

    /// <summary>
    /// Runs one validated request. Expected refusals (bad user, store down, nft failing) become error responses;
    /// <paramref name="cancellationToken"/> bounds the read-only verbs only: a block or unblock, once started, runs to
    /// its end, since stopping it half-way would leave the store and the kernel disagreeing.
    /// </summary>
    public async Task<ControlResponse> HandleAsync(ControlRequest request, PeerCredentials peer, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        try
        {
            request.Validate();
            object data = request.Verb switch
            {
                ControlVerbs.Status => await StatusAsync(cancellationToken),
                ControlVerbs.Users => await UsersAsync(request, cancellationToken),
                ControlVerbs.Log => await LogAsync(request, cancellationToken),
                ControlVerbs.Block => await BlockAsync(request, peer),
                ControlVerbs.Unblock => await UnblockAsync(request, peer),
                ControlVerbs.Limits => Limits(request),
                ControlVerbs.Held or ControlVerbs.Release or ControlVerbs.Delete =>
                    await new HoldAdmin(context, logger, text => Resolve(text, suspendedToo: true)).HandleAsync(request, peer, cancellationToken),
                ControlVerbs.Relays => _relays.Relays(),
                ControlVerbs.Relay or ControlVerbs.Host => await _relays.ChangeAsync(request, peer, CancellationToken.None),
                ControlVerbs.Domains => await new DomainsAdmin(context, ResolveUser).HandleAsync(request, cancellationToken),
                _ => throw new System.Diagnostics.UnreachableException($"verb {request.Verb} passed validation"),
            };
            return ControlResponse.Success(request.Verb, data);
        }
        catch (ControlException e)
        {
            return ControlResponse.Failure(request.Verb, e.Kind, e.Message);
        }
        catch (StoreUnavailableException e)
        {
            return ControlResponse.Failure(request.Verb, ControlErrors.Failed, $"the state store cannot be used: {e.Message}");
        }
        catch (Exception e) when (e is NetfilterException or LinuxInteropException)
        {
            return ControlResponse.Failure(request.Verb, ControlErrors.Failed, e.Message);
        }
    }

    private async Task<StatusData> StatusAsync(CancellationToken cancellationToken)
    {
        var now = context.Time.GetUtcNow();
        var (table, refused) = await TableAsync(cancellationToken);

        // Users whose mail is held (Suspension.Action=Hold) are suspended too, though not in the kernel's set.
        var suspended = context.Suspensions.HoldsInstead is null ? refused : context.Suspensions.All;
        IReadOnlyList<UserActivity> hour = [], day = [];
        string? readFailure = null;
        try
        {
            hour = await context.ReadModel.SummarizeUsersAsync(now - Hour, cancellationToken);
            day = await context.ReadModel.SummarizeUsersAsync(now - Day, cancellationToken);
        }
        catch (StoreUnavailableException e)
        {
            // Status must still answer when the store is broken: that is when the admin needs it most.
            readFailure = e.Message;
        }

        var byUidHour = hour.ToDictionary(a => a.Uid);
        var suspendedUids = suspended.Select(s => s.Uid).ToHashSet();
        var users = day.Select(d => new UserStatus(d.Uid, d.User, WindowCounts.Of(byUidHour.GetValueOrDefault(d.Uid)), WindowCounts.Of(d), suspendedUids.Contains(d.Uid)))
            .Concat(suspended.Where(s => day.All(d => d.Uid != s.Uid)).Select(s => new UserStatus(s.Uid, s.User, WindowCounts.Zero, WindowCounts.Zero, true)))
            .ToList();

        return new StatusData(
            Version,
            context.StartedAt.ToUniversalTime(),
            (long)Math.Max(0, (now - context.StartedAt).TotalSeconds),
            context.ActiveSessions(),
            context.OwnerLookupMethod,
            StoreState(readFailure),
            table,
            users,
            [.. suspended.Select(SuspensionInfo.Of)])
        {
            Relays = _relays.StatusRows(),
        };
    }

    /// <summary>
    /// Compares the installed table with the configured one plus the suspended uids. A suspension landing between
    /// reading the registry and listing the table would look like a difference, so a changed registry is read again.
    /// </summary>
    private async Task<(TableStatus Table, IReadOnlyList<Suspension> Suspended)> TableAsync(CancellationToken cancellationToken)
    {
        var suspended = context.Suspensions.KernelRefused;
        for (var attempt = 0; ; attempt++)
        {
            var spec = context.SuspendedSets.Apply(context.Spec, suspended.Select(s => s.Uid));
            IReadOnlyList<string> differences;
            try
            {
                differences = await context.Rules.FindDifferencesAsync(spec, cancellationToken);
            }
            catch (NetfilterException e)
            {
                differences = [$"the table could not be read: {e.Message}"];
            }

            var now = context.Suspensions.KernelRefused;
            if (differences.Count == 0 || attempt > 0 || now.Select(s => s.Uid).SequenceEqual(suspended.Select(s => s.Uid)))
            {
                return (new TableStatus(spec.Table, differences.Count == 0, differences), suspended);
            }

            suspended = now;
        }
    }

    private StoreStatus StoreState(string? readFailure)
    {
        var health = context.ReadModel.Health;
        var failure = health.LastFailure ?? readFailure;
        return new StoreStatus(health.Path, !health.Broken && failure is null, health.Commits, health.LastCommit, failure);
    }

    private async Task<UsersData> UsersAsync(ControlRequest request, CancellationToken cancellationToken)
    {
        var since = context.Time.GetUtcNow() - (request.Since is null ? DefaultUsersSince : Durations.Parse(request.Since, "--since"));
        var limit = request.Limit ?? DefaultUsersLimit;
        var summary = await context.ReadModel.SummarizeUsersAsync(since, cancellationToken);
        return new UsersData(since, limit, [.. summary.Take(limit).Select(a => new UserActivityRow(
            a.Uid, a.User, a.Delivered, a.DeliveredRecipients, a.Pending, a.Deferred, a.Rejected, a.Refused, a.PolicyRefusals,
            a.BytesDelivered, a.LastActivity.ToUniversalTime(), context.Suspensions.IsSuspended(a.Uid, out _)) { Held = a.Held })]);
    }

    private async Task<LogData> LogAsync(ControlRequest request, CancellationToken cancellationToken)
    {
        var since = context.Time.GetUtcNow() - (request.Since is null ? DefaultLogSince : Durations.Parse(request.Since, "--since"));
        var limit = request.Limit ?? DefaultLogLimit;
        (uint Uid, string Name)? user = request.User is null ? null : Resolve(request.User);
        var transactions = await context.ReadModel.LoadTransactionsAsync(since, user?.Uid, limit, cancellationToken);
        var tallies = await context.ReadModel.LoadTalliesAsync(since, user?.Uid, limit, cancellationToken);
        return new LogData(since, user?.Name, user?.Uid, limit,
            [.. transactions.Select(LogEntry.Of).Concat(tallies.Select(LogEntry.Of)).OrderByDescending(e => e.Time).Take(limit)]);
    }

    private async Task<BlockData> BlockAsync(ControlRequest request, PeerCredentials peer)
    {
        var (uid, name) = Resolve(request.User!);
        if (uid == 0 || context.Spec.ExemptUids.Contains(uid))
        {
            throw new ControlException(
                ControlErrors.BadRequest,
                $"{name} (uid {uid}) is exempt from interception (root, the daemon's own user and Interception.ExemptUsers): its connections never pass through smtp-interceptor, so blocking it would change nothing");
        }

        if (context.Suspensions.IsSuspended(uid, out var existing))
        {
            return Unchanged(existing!);
        }

        var suspension = new Suspension(uid, name, request.Reason!.Trim(), context.Time.GetUtcNow(), SuspensionSource.Admin);
        bool changed;
        try
        {
            changed = await context.Suspensions.SuspendAsync(suspension, Counts(uid), CancellationToken.None);
        }
        catch (Exception e) when (e is StoreUnavailableException or NetfilterException)
        {
            // The registry refuses the user in memory before it stores and applies; say which part is missing.
            logger.SuspensionIncomplete(peer.Uid, peer.Pid, uid, name, e.Message);
            throw new ControlException(
                ControlErrors.Failed,
                $"{name} (uid {uid}) is refused by the daemon from now on, but the suspension is incomplete (not stored or not in the kernel's set; run block again after fixing it): {e.Message}");
        }

        if (!changed && context.Suspensions.IsSuspended(uid, out existing))
        {
            // Suspended by someone else (an automatic rule) between our check and our call.
            return Unchanged(existing!);
        }

        logger.Suspended(peer.Uid, peer.Pid, uid, name, suspension.Reason);
        return new BlockData(uid, name, true, true, $"{name} (uid {uid}) suspended: {suspension.Reason}", SuspensionInfo.Of(suspension));

        BlockData Unchanged(Suspension s) => new(
            uid, name, false, true,
            string.Create(CultureInfo.InvariantCulture, $"{name} (uid {uid}) was already suspended since {s.Since.ToUniversalTime():yyyy-MM-dd HH:mm:ss}Z ({s.Source.ToString().ToLowerInvariant()}): {s.Reason}"),
            SuspensionInfo.Of(s));
    }

    private async Task<BlockData> UnblockAsync(ControlRequest request, PeerCredentials peer)
    {
        var (uid, name) = Resolve(request.User!, suspendedToo: true);
        var changed = await context.Suspensions.UnsuspendAsync(uid, CancellationToken.None);

        // Without this, the refusals that tripped an automatic suspension would trip it again at the next message.
        context.AutoSuspension.Reset(uid);
        context.LocalFailures?.Reset(uid);
        if (changed)
        {
            logger.Unsuspended(peer.Uid, peer.Pid, uid, name);
        }

        return new BlockData(
            uid, name, changed, false,
            changed ? $"{name} (uid {uid}) unsuspended: port 25 is intercepted and relayed again" : $"{name} (uid {uid}) was not suspended",
            null);
    }

    private LimitsData Limits(ControlRequest request)
    {
        var limits = context.Options.Limits;
        var overrides = limits.Users.OrderBy(u => u.Key, StringComparer.Ordinal)
            .Select(u => new ConfiguredLimits(u.Key, LimitValues.Of(limits.For(u.Key)), LimitValues.SetIn(u.Value)))
            .ToList();
        UserLimits? user = null;
        if (request.User is { } text)
        {
            // A configured name with no account yet still has limits to show, just no usage.
            var (uid, name) = ResolveUser(text) is { } found ? ((uint?)found.Uid, found.Name)
                : limits.Users.ContainsKey(text) ? (null, text)
                : throw NoSuchUser(text);
            var own = limits.Users.GetValueOrDefault(name);
            user = new UserLimits(
                name,
                uid,
                own is null ? "Limits.Default" : $"Limits.Users.{name}",
                LimitValues.Of(limits.For(name)),
                own is null ? [] : LimitValues.SetIn(own),
                uid is { } u ? Usage(u) : null,
                uid is { } s && context.Suspensions.IsSuspended(s, out _));
        }

        return new LimitsData(LimitValues.Of(limits.For(null)), overrides, user);
    }

    private UsageValues Usage(uint uid)
    {
        var (messagesHour, messagesDay, recipientsHour, recipientsDay) = context.Ledger.Usage(uid);
        return new UsageValues(messagesHour, messagesDay, recipientsHour, recipientsDay, context.Ledger.Connections(uid));
    }

    /// <summary>The alert command's environment gets the same counts as for an automatic suspension.</summary>
    private Dictionary<string, string> Counts(uint uid) => AlertCounts.Of(context.Ledger, uid);

    /// <summary>
    /// A name or uid that must exist. For unblock, a name also matches a suspension on record: the account may have
    /// been deleted since, and its suspension must still be liftable.
    /// </summary>
    private (uint Uid, string Name) Resolve(string text, bool suspendedToo = false)
    {
        if (ResolveUser(text) is { } found)
        {
            return found;
        }

        var recorded = suspendedToo ? context.Suspensions.All.FirstOrDefault(s => s.User == text) : null;
        return recorded is not null ? (recorded.Uid, recorded.User) : throw NoSuchUser(text);
    }

    private static ControlException NoSuchUser(string text) =>
        new(ControlErrors.BadRequest, $"no such user \"{text}\" (give a user name from the user database or a numeric uid)");

    /// <summary>Names first (as Interception.ExemptUsers does), then a number as a uid, named when it has an account.</summary>
    internal static (uint Uid, string Name)? ResolveFromDatabase(string text)
    {
        if (UserDatabase.UidOf(text) is { } uid)
        {
            return (uid, text);
        }

        return UserDatabase.ParseUid(text) is { } numeric ? (numeric, UserDatabase.NameOf(numeric) ?? text) : null;
    }
}
