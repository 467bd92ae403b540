using Interceptor.Core.Policy;
using Interceptor.Daemon.Maintenance;
using Interceptor.Linux;
using Interceptor.Netfilter;
using Interceptor.Tests.Linux;
using Interceptor.Tests.Netfilter;
using Interceptor.Tests.TestDoubles;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Daemon.Maintenance;

/// <summary>
/// The table check against the real nft and the real kernel's generation, in a throwaway namespace; the checks are
/// called one by one (the periodic interval is an hour), and the suspensions' kernel side is recorded, not applied.
/// </summary>
[TestFixture]
[NonParallelizable]
[CancelAfter(60_000)]
public class TableWatchdogTests
{
    private static readonly RulesetSpec Spec = new("smtp_interceptor", 10025, [25], [0]);

    [Test]
    public async Task A_periodic_check_lists_the_tables_only_when_the_ruleset_or_the_registry_moved()
    {
        using var ns = TestNamespace.CreateOrSkip();
        using var generation = InNetworkNamespace.Open(ns, NftablesGeneration.Open);
        var rules = new RulesetManager(ns.Nft);
        var kernel = new RecordingKernel();
        var registry = new SuspensionRegistry(new MemoryStore(), kernel, kernel);
        using var watchdog = new TableWatchdog(rules, Spec, registry, TimeSpan.FromHours(1), NullLogger.Instance) { Generation = generation };
        await rules.InstallAsync(Spec, CancellationToken.None);
        var listings = new List<int>();

        async Task CheckAsync(bool notified = false)
        {
            await watchdog.CheckOnceAsync(notified, CancellationToken.None);
            listings.Add(watchdog.Listings);
        }

        await CheckAsync(); // nothing verified yet: lists
        await CheckAsync(); // unchanged: does not
        var other = ns.Exec(["nft", "add", "table", "inet", "someone_elses"]);
        Assert.That(other.ExitCode, Is.Zero, other.StandardError);
        await CheckAsync(); // the ruleset moved (not our tables): lists, finds them intact
        await CheckAsync();
        await CheckAsync(notified: true); // the kernel's notice: lists whatever the generation says
        var restoredBefore = watchdog.Restorations;

        // In the registry but not in the kernel (the recording kernel applies nothing, as a failed nft run would leave it).
        await registry.SuspendAsync(new Suspension(4242, "u4242", "test", DateTimeOffset.UnixEpoch, SuspensionSource.Admin), new Dictionary<string, string>(), CancellationToken.None);
        await CheckAsync(); // the expectation moved: lists, restores the set with 4242
        var suspended = await rules.ListSuspendedAsync(Spec.Table, CancellationToken.None);
        await CheckAsync(); // nothing is verified after a restoration: lists once more
        await CheckAsync();

        Assert.Multiple(() =>
        {
            Assert.That(listings, Is.EqualTo(new[] { 1, 1, 2, 2, 3, 4, 5, 5 }), "listings after each check");
            Assert.That(restoredBefore, Is.Zero, "nothing to restore before the suspension");
            Assert.That(watchdog.Restorations, Is.EqualTo(1));
            Assert.That(suspended, Does.Contain(4242u), "the restoration put the registry's suspension into the kernel");
        });
    }

    [Test]
    public async Task Without_the_generation_every_check_lists()
    {
        using var ns = TestNamespace.CreateOrSkip();
        var rules = new RulesetManager(ns.Nft);
        var kernel = new RecordingKernel();
        using var watchdog = new TableWatchdog(rules, Spec, new SuspensionRegistry(new MemoryStore(), kernel, kernel), TimeSpan.FromHours(1), NullLogger.Instance);
        await rules.InstallAsync(Spec, CancellationToken.None);

        for (var i = 0; i < 3; i++)
        {
            await watchdog.CheckOnceAsync(notified: false, CancellationToken.None);
        }

        Assert.Multiple(() =>
        {
            Assert.That(watchdog.Listings, Is.EqualTo(3));
            Assert.That(watchdog.Restorations, Is.Zero);
        });
    }

    [Test]
    public async Task What_follows_a_table_change_runs_after_each_install_and_each_notice_but_not_after_a_periodic_check()
    {
        // The metrics endpoint's sweep is hooked here: a table that was missing, even for a moment, may have let
        // connections be made to a customer.
        using var ns = TestNamespace.CreateOrSkip();
        var rules = new RulesetManager(ns.Nft);
        var kernel = new RecordingKernel();
        var runs = 0;
        using var watchdog = new TableWatchdog(rules, Spec, new SuspensionRegistry(new MemoryStore(), kernel, kernel), TimeSpan.FromHours(1), NullLogger.Instance)
        {
            AfterTableChange = () => runs++,
        };

        await watchdog.StartAsync(CancellationToken.None);
        var afterStart = runs;
        await watchdog.CheckOnceAsync(notified: false, CancellationToken.None);
        var afterPeriodic = runs;
        await watchdog.CheckOnceAsync(notified: true, CancellationToken.None);
        var afterNotice = runs;
        var deleted = ns.Exec(["nft", "delete", "table", "inet", Spec.Table]);
        Assert.That(deleted.ExitCode, Is.Zero, deleted.StandardError);
        await watchdog.CheckOnceAsync(notified: true, CancellationToken.None);
        await watchdog.StopAsync(CancellationToken.None);

        Assert.Multiple(() =>
        {
            Assert.That(afterStart, Is.EqualTo(1), "after the first install");
            Assert.That(afterPeriodic, Is.EqualTo(1), "not after a periodic check that found the table intact");
            Assert.That(afterNotice, Is.EqualTo(2), "after a notice, even when the table was found intact (deleted and put back alike)");
            Assert.That(watchdog.Restorations, Is.EqualTo(1));
            Assert.That(runs, Is.EqualTo(3), "once after the notice that led to a restore");
        });
    }

    [Test]
    public async Task An_unmoved_generation_is_trusted_for_a_minute_at_most()
    {
        using var ns = TestNamespace.CreateOrSkip();
        using var generation = InNetworkNamespace.Open(ns, NftablesGeneration.Open);
        var rules = new RulesetManager(ns.Nft);
        var kernel = new RecordingKernel();
        var clock = new ManualClock(DateTimeOffset.UnixEpoch);
        using var watchdog = new TableWatchdog(rules, Spec, new SuspensionRegistry(new MemoryStore(), kernel, kernel), TimeSpan.FromHours(1), NullLogger.Instance)
        {
            Generation = generation,
            Time = clock,
        };
        await rules.InstallAsync(Spec, CancellationToken.None);
        var listings = new List<int>();
        foreach (var advance in new[] { 0, 30, 29, 2, 30 })
        {
            clock.Advance(TimeSpan.FromSeconds(advance));
            await watchdog.CheckOnceAsync(notified: false, CancellationToken.None);
            listings.Add(watchdog.Listings);
        }

        Assert.That(listings, Is.EqualTo(new[] { 1, 1, 1, 2, 2 }), "listed at 0 s, skipped at 30 and 59 s, listed at 61 s, skipped at 91 s");
    }

    [Test]
    public async Task A_suspension_on_its_way_to_the_kernel_is_not_taken_for_a_change_behind_our_back()
    {
        using var ns = TestNamespace.CreateOrSkip();
        var rules = new RulesetManager(ns.Nft);
        var kernel = new HeldKernel();
        var registry = new SuspensionRegistry(new MemoryStore(), kernel, kernel);
        using var watchdog = new TableWatchdog(rules, Spec, registry, TimeSpan.FromHours(1), NullLogger.Instance);
        await rules.InstallAsync(Spec, CancellationToken.None);

        // In the registry, its nft run not yet done: the kernel lags the expectation.
        var suspending = registry.SuspendAsync(new Suspension(4243, "u4243", "test", DateTimeOffset.UnixEpoch, SuspensionSource.Admin), new Dictionary<string, string>(), CancellationToken.None);
        await kernel.Entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await watchdog.CheckOnceAsync(notified: true, CancellationToken.None);
        var whileInFlight = (watchdog.Listings, watchdog.Restorations, registry.KernelChangesInFlight);

        // Its nft run failed (the held kernel applies nothing): now the difference is one, and is restored.
        kernel.Release.SetResult();
        await suspending;
        await watchdog.CheckOnceAsync(notified: true, CancellationToken.None);
        var suspended = await rules.ListSuspendedAsync(Spec.Table, CancellationToken.None);

        Assert.Multiple(() =>
        {
            Assert.That(whileInFlight, Is.EqualTo((1, 0, 1)), "listed, found the set short of 4243, and left it while the suspension was in flight");
            Assert.That(registry.KernelChangesInFlight, Is.Zero);
            Assert.That(watchdog.Restorations, Is.EqualTo(1), "restored once nothing was in flight");
            Assert.That(suspended, Does.Contain(4243u));
        });
    }

    [Test]
    public async Task A_suspension_in_flight_holds_back_a_set_difference_two_seconds_at_most_and_a_structural_one_not_at_all()
    {
        using var ns = TestNamespace.CreateOrSkip();
        var rules = new RulesetManager(ns.Nft);
        var kernel = new HeldKernel();
        var registry = new SuspensionRegistry(new MemoryStore(), kernel, kernel);
        var clock = new ManualClock(DateTimeOffset.UnixEpoch);
        using var watchdog = new TableWatchdog(rules, Spec, registry, TimeSpan.FromHours(1), NullLogger.Instance) { Time = clock };
        await rules.InstallAsync(Spec, CancellationToken.None);
        var suspending = registry.SuspendAsync(new Suspension(4244, "u4244", "test", DateTimeOffset.UnixEpoch, SuspensionSource.Admin), new Dictionary<string, string>(), CancellationToken.None);
        await kernel.Entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var restorations = new List<int>();

        async Task CheckAsync()
        {
            await watchdog.CheckOnceAsync(notified: true, CancellationToken.None);
            restorations.Add(watchdog.Restorations);
        }

        await CheckAsync(); // the set lacks 4244: held back
        clock.Advance(TimeSpan.FromSeconds(1));
        await CheckAsync(); // still within the grace
        clock.Advance(TimeSpan.FromSeconds(1.5));
        await CheckAsync(); // past it: restored, with 4244
        var flush = ns.Exec(["nft", "flush", "chain", "inet", Spec.Table, "output_nat"]);
        Assert.That(flush.ExitCode, Is.Zero, flush.StandardError);
        await CheckAsync(); // the redirect is gone: restored at once, the suspension still in flight
        var suspended = await rules.ListSuspendedAsync(Spec.Table, CancellationToken.None);
        kernel.Release.SetResult();
        await suspending;

        Assert.Multiple(() =>
        {
            Assert.That(restorations, Is.EqualTo(new[] { 0, 0, 1, 2 }), "restorations after each check");
            Assert.That(suspended, Does.Contain(4244u));
        });
    }

    /// <summary>A kernel whose suspension waits until the test releases it, then applies nothing.</summary>
    private sealed class HeldKernel : IKernelSuspension, ISuspensionAlert
    {
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task SuspendAsync(uint uid, CancellationToken cancellationToken)
        {
            Entered.TrySetResult();
            await Release.Task;
        }

        public Task UnsuspendAsync(uint uid, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task NotifyAsync(Suspension suspension, IReadOnlyDictionary<string, string> counts, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
