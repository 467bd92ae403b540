using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Daemon.Control;
using Interceptor.Netfilter;
using Interceptor.Store;
using Interceptor.Tests.TestDoubles;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Daemon.Control;

/// <summary>
/// Everything an AdminService needs: the real SQLite store in a temporary directory (so the summaries are the store's own
/// SQL), a recording kernel and a fake nft program.
/// </summary>
internal sealed class AdminFixture : IAsyncDisposable
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
        Store = SqliteStateStore.Open(Path.Combine(_directory, "state"), TimeProvider.System, NullLogger.Instance);
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
            "sock_diag")
        {
            LocalFailures = LocalFailures,
        };
        Service = new AdminService(Context, NullLogger.Instance) { ResolveUser = Resolve };
    }

    public InterceptorOptions Options { get; }
    public ManualClock Clock { get; } = new(Now);
    public SqliteStateStore Store { get; }

    /// <summary>The database file; deleting it breaks the store as it would under the running daemon.</summary>
    public string Database => Store.Path;
    public RecordingKernel Kernel { get; } = new();
    public SuspensionRegistry Suspensions { get; }
    public AutoSuspensionRules AutoSuspension { get; }

    /// <summary>The breaker at MAIL after failures of ours (limit 1): `unblock` clears it.</summary>
    public LocalFailureBreaker LocalFailures { get; } = new(new SuspensionOptions { LocalFailureLimit = 1 }, TimeProvider.System);
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

    public async Task<IReadOnlyList<Suspension>> StoredSuspensionsAsync() => await Store.LoadSuspensionsAsync(CancellationToken.None);

    /// <summary>Removes the database under the open store: every later write and read fails as unavailable.</summary>
    public async Task BreakStoreAsync()
    {
        File.Delete(Database);

        // The store notices at its next write; a refusal nobody reads makes it notice now.
        try
        {
            await Store.RecordRefusalAsync(new PolicyRefusal(Now, 4242, "probe", RefusalKind.MessagesPerHour, "probe"), CancellationToken.None);
        }
        catch (StoreUnavailableException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Store.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}
