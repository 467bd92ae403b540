using Interceptor.Core.Attribution;
using Microsoft.Extensions.Logging;

namespace Interceptor.Linux;

/// <summary>
/// Warns of /etc/subuid ranges that hold the uids of other accounts: each such account's connections are charged to the
/// range's owner, who can also become it through newuidmap (a misconfigured host: alice would send with bob's mail
/// identity, bob would spend alice's quota). Every account the passwd database lists is looked up in the ranges, on a
/// thread of its own (listing a directory may take long, and never on a connection's path): when the ranges changed,
/// and hourly for accounts added inside ranges that did not.
/// </summary>
public sealed class SubordinateUidAccountCheck
{
    private const long RecheckMs = 3_600_000;
    private const int NamedAccounts = 5;

    private readonly string _path;
    private readonly ILogger _logger;
    private readonly Func<IReadOnlyList<(uint Uid, string Name)>> _accounts;

    // Offered by the file's reader (one thread at a time, under its lock).
    private SubordinateUidMap? _lastOffered;

    // Handed to the checker: the newest map not yet checked, and whether the checker runs (only one ever does).
    private SubordinateUidMap? _pending;
    private int _running;
    private long _checkedAt = long.MinValue / 2;
    private int _checks;

    // The checker's own: what it checked and said last, so that the same finding is not logged again.
    private IReadOnlyList<SubordinateUidRange>? _checkedRanges;
    private string? _lastOutcome;
    private string? _lastFailure;

    /// <param name="accounts">Lists every account (getpwent_r in production).</param>
    public SubordinateUidAccountCheck(string path, ILogger logger, Func<IReadOnlyList<(uint Uid, string Name)>>? accounts = null)
    {
        _path = path;
        _logger = logger;
        _accounts = accounts ?? (() => UserDatabase.Accounts());
    }

    /// <summary>How many maps were checked (tests wait for it).</summary>
    public int Checks => Volatile.Read(ref _checks);

    /// <summary>
    /// The map as the file's reader has it now (at most once a second): checked in the background when it is a new map
    /// or the last check is an hour old. Never waits.
    /// </summary>
    public void Offer(SubordinateUidMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        // The same ranges (the file read again while an owner stays unresolved makes a new map each minute): hourly only.
        var sameRanges = _lastOffered is { } last && (ReferenceEquals(map, last) || map.Ranges.SequenceEqual(last.Ranges));
        if (sameRanges && Environment.TickCount64 - Volatile.Read(ref _checkedAt) < RecheckMs)
        {
            return;
        }

        _lastOffered = map;
        Volatile.Write(ref _checkedAt, Environment.TickCount64);
        Volatile.Write(ref _pending, map);
        if (Interlocked.Exchange(ref _running, 1) == 0)
        {
            _ = Task.Factory.StartNew(Run, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }
    }

    private void Run()
    {
        try
        {
            while (true)
            {
                if (Interlocked.Exchange(ref _pending, null) is { } map)
                {
                    Check(map);
                    Interlocked.Increment(ref _checks);
                    continue;
                }

                // Done, unless a map was handed over between the last look and letting go (a full fence: the reader's
                // Exchange must see 0, or this loop must see its map).
                Interlocked.Exchange(ref _running, 0);
                if (Volatile.Read(ref _pending) is null || Interlocked.Exchange(ref _running, 1) == 1)
                {
                    return;
                }
            }
        }
#pragma warning disable CA1031 // a bug here must not stop every later check: say so, and let the next offer start afresh
        catch (Exception e)
#pragma warning restore CA1031
        {
            _logger.CannotListAccounts(_path, $"{e.GetType().Name}: {e.Message}");
            Interlocked.Exchange(ref _running, 0);

            // A map offered meanwhile found the checker running: start it again rather than leave that map for an hour.
            if (Volatile.Read(ref _pending) is not null && Interlocked.Exchange(ref _running, 1) == 0)
            {
                _ = Task.Factory.StartNew(Run, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            }
        }
    }

    private void Check(SubordinateUidMap map)
    {
        if (map.Count == 0)
        {
            // No ranges, nothing inside them: no listing of a directory for nothing.
            Report(map, [], accountsListed: 0);
            return;
        }

        IReadOnlyList<(uint Uid, string Name)> accounts;
        try
        {
            accounts = _accounts();
        }
        catch (LinuxInteropException e)
        {
            if (e.Message != _lastFailure)
            {
                _logger.CannotListAccounts(_path, e.Message);
                _lastFailure = e.Message;
            }

            return;
        }

        _lastFailure = null;
        Report(map, map.AccountsInside(accounts), accounts.Count);
    }

    private void Report(SubordinateUidMap map, IReadOnlyList<(SubordinateUidRange Range, IReadOnlyList<(uint Uid, string Name)> Accounts)> inside, int accountsListed)
    {
        var warnings = inside.Select(held => (held.Range, Accounts: AccountList(held.Accounts))).ToList();

        // The same ranges holding the same accounts (found again hourly, or after a retry of unresolved owners): said once.
        var outcome = string.Join("\n", warnings.Select(w => $"{w.Range}: {w.Accounts}"));
        var unchanged = outcome == _lastOutcome;
        var firstOrNewRanges = _checkedRanges is null || !_checkedRanges.SequenceEqual(map.Ranges);
        _lastOutcome = outcome;
        _checkedRanges = map.Ranges;
        if (unchanged && !firstOrNewRanges)
        {
            return;
        }

        foreach (var (range, list) in warnings)
        {
            _logger.AccountsInsideRange(_path, range.LineNumber, range.Range.ToString(), range.Owner.Name, list);
        }

        if (warnings.Count == 0 && map.Count > 0)
        {
            _logger.NoAccountsInsideRanges(_path, accountsListed, map.Count);
        }
    }

    private static string AccountList(IReadOnlyList<(uint Uid, string Name)> accounts)
    {
        var named = string.Join(", ", accounts.Take(NamedAccounts).Select(a => $"{a.Name} ({a.Uid})"));
        return accounts.Count > NamedAccounts ? $"{named} and {accounts.Count - NamedAccounts} more" : named;
    }
}
