using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Daemon.Control;
using Interceptor.Netfilter;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Daemon.Control;

/// <summary>An in-memory store with the IStateStore contract (newest first, since inclusive); can be made to fail.</summary>
internal sealed class MemoryStore : IStateStore
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, TransactionEvent> _transactions = [];
    private readonly List<PolicyRefusal> _refusals = [];
    private readonly Dictionary<uint, Suspension> _suspensions = [];

    public bool Broken { get; set; }

    public IReadOnlyCollection<Suspension> Suspensions
    {
        get
        {
            lock (_lock)
            {
                return [.. _suspensions.Values];
            }
        }
    }

    public Task RecordTransactionAsync(TransactionEvent transaction, CancellationToken cancellationToken) => Write(() => _transactions[transaction.Id] = transaction);

    public Task RecordOutcomeDeferred(TransactionEvent final)
    {
        // Like the real store, a deferred write reports failure through its task, never by throwing.
        try
        {
            return RecordTransactionAsync(final, CancellationToken.None);
        }
        catch (StoreUnavailableException e)
        {
            return Task.FromException(e);
        }
    }

    public Task RecordRefusalAsync(PolicyRefusal refusal, CancellationToken cancellationToken) => Write(() => _refusals.Add(refusal));

    public Task SaveSuspensionAsync(Suspension suspension, CancellationToken cancellationToken) => Write(() => _suspensions[suspension.Uid] = suspension);

    public Task<bool> RemoveSuspensionAsync(uint uid, CancellationToken cancellationToken)
    {
        Check();
        lock (_lock)
        {
            return Task.FromResult(_suspensions.Remove(uid));
        }
    }

    public Task<IReadOnlyList<Suspension>> LoadSuspensionsAsync(CancellationToken cancellationToken)
    {
        Check();
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<Suspension>>([.. _suspensions.Values.OrderBy(s => s.Uid)]);
        }
    }

    public Task<IReadOnlyList<TransactionEvent>> LoadTransactionsAsync(DateTimeOffset since, uint? uid, int limit, CancellationToken cancellationToken)
    {
        Check();
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<TransactionEvent>>([.. _transactions.Values
                .Where(t => t.Started >= since && (uid is null || t.Uid == uid))
                .OrderByDescending(t => t.Started)
                .Take(limit)]);
        }
    }

    public Task<IReadOnlyList<PolicyRefusal>> LoadRefusalsAsync(DateTimeOffset since, uint? uid, CancellationToken cancellationToken)
    {
        Check();
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<PolicyRefusal>>([.. _refusals
                .Where(r => r.Time >= since && (uid is null || r.Uid == uid))
                .OrderByDescending(r => r.Time)]);
        }
    }

    public Task PruneAsync(DateTimeOffset before, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Tallies are not kept here; the admin tests use transactions and refusals.</summary>
    public void CountTally(TallyEntry entry)
    {
    }

    public Task<IReadOnlyList<TallyEntry>> LoadTalliesAsync(DateTimeOffset since, uint? uid, int limit, CancellationToken cancellationToken)
    {
        Check();
        return Task.FromResult<IReadOnlyList<TallyEntry>>([]);
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private Task Write(Action action)
    {
        Check();
        lock (_lock)
        {
            action();
        }

        return Task.CompletedTask;
    }

    private void Check()
    {
        if (Broken)
        {
            throw new StoreUnavailableException("state.db: disk I/O error (test)");
        }
    }
}

/// <summary>Records what would have gone into the kernel's set and which alerts would have run.</summary>
internal sealed class RecordingKernel : IKernelSuspension, ISuspensionAlert
{
    public List<string> Calls { get; } = [];

    public List<IReadOnlyDictionary<string, string>> AlertCounts { get; } = [];

    public Task SuspendAsync(uint uid, CancellationToken cancellationToken)
    {
        lock (Calls)
        {
            Calls.Add($"suspend {uid}");
        }

        return Task.CompletedTask;
    }

    public Task UnsuspendAsync(uint uid, CancellationToken cancellationToken)
    {
        lock (Calls)
        {
            Calls.Add($"unsuspend {uid}");
        }

        return Task.CompletedTask;
    }

    public Task NotifyAsync(Suspension suspension, IReadOnlyDictionary<string, string> counts, CancellationToken cancellationToken)
    {
        lock (Calls)
        {
            Calls.Add($"alert {suspension.Uid} {suspension.Source}");
            AlertCounts.Add(counts);
        }

        return Task.CompletedTask;
    }
}

/// <summary>A clock the test moves by hand.</summary>
internal sealed class ManualClock(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public override DateTimeOffset GetUtcNow() => Now;
}

/// <summary>Everything an AdminService needs, with fakes: a memory store, a recording kernel, a fake nft program.</summary>
internal sealed class AdminFixture : IDisposable
{
    public static readonly DateTimeOffset Now = new(2030, 5, 1, 12, 0, 0, TimeSpan.Zero);

    /// <summary>Users the fake resolver knows; 0 and 995 (the daemon's own user) are exempt.</summary>
    public static readonly IReadOnlyDictionary<string, uint> Accounts = new Dictionary<string, uint>
    {
        ["root"] = 0,
        ["smtpi"] = 995,
        ["alice"] = 1001,
        ["bob"] = 1002,
    };

    private readonly string _directory = Directory.CreateTempSubdirectory("admin-test-").FullName;

    public AdminFixture(InterceptorOptions? options = null, string nftScript = "echo 'Error: No such file or directory' >&2; exit 1")
    {
        Options = options ?? new InterceptorOptions();
        var nft = Path.Combine(_directory, "nft");
        File.WriteAllText(nft, "#!/bin/sh\n" + nftScript + "\n");
        File.SetUnixFileMode(nft, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Suspensions = new SuspensionRegistry(Store, Kernel, Kernel);
        AutoSuspension = new AutoSuspensionRules(new SuspensionOptions { RefusalLimit = 3, RefusalWindow = TimeSpan.FromMinutes(60) }, Clock);
        Ledger = new QuotaLedger(Clock);
        Context = new AdminContext(
            Options,
            new RulesetSpec("smtp_interceptor", 10025, [25], [0, 995]),
            new RulesetManager(new NftClient(nftPath: nft)),
            Store,
            Suspensions,
            AutoSuspension,
            Ledger,
            () => 3,
            Now - TimeSpan.FromHours(2) - TimeSpan.FromMinutes(13),
            Clock,
            "sock_diag");
        Service = new AdminService(Context, NullLogger.Instance) { ResolveUser = Resolve };
    }

    public InterceptorOptions Options { get; }
    public ManualClock Clock { get; } = new(Now);
    public MemoryStore Store { get; } = new();
    public RecordingKernel Kernel { get; } = new();
    public SuspensionRegistry Suspensions { get; }
    public AutoSuspensionRules AutoSuspension { get; }
    public QuotaLedger Ledger { get; }
    public AdminContext Context { get; }
    public AdminService Service { get; }

    public static (uint Uid, string Name)? Resolve(string text)
    {
        if (Accounts.TryGetValue(text, out var uid))
        {
            return (uid, text);
        }

        return uint.TryParse(text, out var numeric)
            ? (numeric, Accounts.FirstOrDefault(a => a.Value == numeric).Key ?? text)
            : null;
    }

    public static TransactionEvent Transaction(string id, TimeSpan ago, uint uid, TransactionOutcome outcome, int recipients = 1, long size = 2048) =>
        new(id, Now - ago, uid, Accounts.First(a => a.Value == uid).Key, $"{uid}@client.test", recipients, size, "203.0.113.5:25", "203.0.113.5:25",
            outcome switch
            {
                TransactionOutcome.Delivered => "250 2.0.0 Ok: queued as 4Xyz",
                TransactionOutcome.Deferred => "451 4.7.1 try later",
                TransactionOutcome.Rejected => "550 5.7.1 spam",
                _ => "",
            },
            TimeSpan.FromMilliseconds(42))
        {
            Outcome = outcome,
        };

    public Task<ControlResponse> HandleAsync(ControlRequest request) =>
        Service.HandleAsync(request, new Interceptor.Linux.PeerCredentials(4242, 0, 0), CancellationToken.None);

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
