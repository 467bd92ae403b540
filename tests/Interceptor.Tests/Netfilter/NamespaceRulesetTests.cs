using System.Diagnostics;
using System.Net;
using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

/// <summary>
/// The real nft, but only ever inside a throwaway network namespace: the host's own ruleset is never
/// touched. Runs only as root with nft and ip installed, and is skipped (inconclusive) otherwise.
/// </summary>
[NonParallelizable]
public class NamespaceRulesetTests
{
    private static readonly RulesetSpec Spec = new("smtp_interceptor", 10025, [25, 587], [0, 105]);

    private string? networkNamespace;

    [SetUp]
    public void CreateNamespace()
    {
        Assume.That(Environment.IsPrivilegedProcess, "needs root to create a network namespace");
        Assume.That(File.Exists("/usr/sbin/nft") || File.Exists("/sbin/nft"), "needs nft");
        Assume.That(File.Exists("/usr/sbin/ip") || File.Exists("/sbin/ip") || File.Exists("/bin/ip"), "needs ip");

        var name = $"nf-ut-{Environment.ProcessId}-{Random.Shared.Next(100000)}";
        Assume.That(Ip("netns", "add", name), Is.Zero, "ip netns add failed");
        networkNamespace = name;
    }

    [TearDown]
    public void DeleteNamespace()
    {
        if (networkNamespace is not null)
        {
            Ip("netns", "del", networkNamespace);
        }
    }

    [Test]
    public async Task Install_twice_verify_and_remove()
    {
        var nft = new NftClient(networkNamespace);
        var manager = new RulesetManager(nft);

        Assert.That(await manager.IsInstalledAsExpectedAsync(Spec, CancellationToken.None), Is.False);
        Assert.That(await manager.FindDifferencesAsync(Spec, CancellationToken.None), Is.EqualTo(new[] { "table inet smtp_interceptor does not exist", "table inet smtp_interceptor_guard does not exist" }));

        await manager.InstallAsync(Spec, CancellationToken.None);
        await manager.InstallAsync(Spec with { ExemptUids = [0, 1000] }, CancellationToken.None);

        Assert.That(await manager.IsInstalledAsExpectedAsync(Spec with { ExemptUids = [0, 1000] }, CancellationToken.None), Is.True);
        Assert.That(
            await manager.FindDifferencesAsync(Spec, CancellationToken.None),
            Is.EqualTo(new[]
            {
                "set exempt_uids lacks UID(s) 105: these users would be intercepted",
                "set exempt_uids holds unexpected UID(s) 1000: these users bypass interception",
                "table inet smtp_interceptor_guard: set exempt_uids lacks UID(s) 105: these users would be refused",
                "table inet smtp_interceptor_guard: set exempt_uids holds unexpected UID(s) 1000: these users may bypass interception",
            }));

        await manager.RemoveAsync(Spec.Table, CancellationToken.None);
        Assert.That(await nft.ListTableAsync(Spec.Table, CancellationToken.None), Is.Null);
        Assert.That(await nft.ListTableAsync(Spec.GuardTable, CancellationToken.None), Is.Null);

        // Removing what is not there is not an error.
        await manager.RemoveAsync(Spec.Table, CancellationToken.None);
    }

    [Test]
    public async Task Every_rendered_variant_applies_and_verifies()
    {
        var manager = new RulesetManager(new NftClient(networkNamespace));

        var variants = new[]
        {
            Spec,
            Spec with { ExemptUids = [] },
            new RulesetSpec("smtp_interceptor", 10025, [25], [0]),
            RulesetRendererTests.Everything,
            Spec with { BlockedPorts = [465] },
            Spec with { SuspendedUids = [1001] },
            Spec with { AllowedRoutes = [new(1001, IPAddress.Parse("2001:db8::1"), 587)] },
            Spec with { AllowedRoutes = [new(1001, IPAddress.Parse("192.0.2.1"), 587)] },
            Spec with { Lockdown = true },
            RulesetRendererTests.Everything with { Lockdown = true },
        };

        foreach (var spec in variants)
        {
            await manager.InstallAsync(spec, CancellationToken.None);
            Assert.That(await manager.IsInstalledAsExpectedAsync(spec, CancellationToken.None), Is.True, spec.ToString());
        }
    }

    [Test]
    public async Task Lockdown_and_normal_form_each_report_the_other_as_a_difference()
    {
        var manager = new RulesetManager(new NftClient(networkNamespace));
        var lockdown = Spec with { Lockdown = true };

        await manager.InstallAsync(lockdown, CancellationToken.None);
        var expectingNormal = await manager.FindDifferencesAsync(Spec, CancellationToken.None);
        await manager.InstallAsync(Spec, CancellationToken.None);
        var expectingLockdown = await manager.FindDifferencesAsync(lockdown, CancellationToken.None);

        Assert.That(expectingNormal, Has.Some.Contains("no IPv4 rule redirects to port").And.Some.Contains("no IPv6 rule redirects to port"));
        Assert.That(expectingLockdown, Has.Some.Contains("redirects although the table should be in lockdown"));
    }

    [Test]
    public async Task A_tampered_guard_table_is_reported_in_words()
    {
        var nft = new NftClient(networkNamespace);
        var manager = new RulesetManager(nft);
        var spec = RulesetRendererTests.Everything;
        await manager.InstallAsync(spec, CancellationToken.None);

        await nft.ApplyAsync(
            "flush chain inet smtp_interceptor_guard output_guard\n"
            + "add rule inet smtp_interceptor_guard output_guard tcp dport 25 reject with tcp reset\n"
            + "add rule inet smtp_interceptor_guard output_guard meta skuid @exempt_uids accept\n"
            + "add rule inet smtp_interceptor_guard output_guard tcp dport 2525 accept\n",
            CancellationToken.None);

        var differences = await manager.FindDifferencesAsync(spec, CancellationToken.None);
        Assert.That(differences, Has.All.StartWith("table inet smtp_interceptor_guard: "), "the main table is intact");
        Assert.That(differences, Has.Some.Contains("the refusing rule in chain output_guard does not cover port(s) 465, 587, 2525"));
        Assert.That(differences, Has.Some.Contains("the rule for set exempt_uids in chain output_guard comes after the refusal"));
        Assert.That(differences, Has.Some.Contains("no rule in chain output_guard accepts the routes in set allowed_routes_v4"));
        Assert.That(differences, Has.Some.Contains("unexpected rule in chain output_guard: it accepts"));

        await nft.DeleteTableAsync(spec.GuardTable, CancellationToken.None);
        Assert.That(await manager.FindDifferencesAsync(spec, CancellationToken.None), Is.EqualTo(new[] { "table inet smtp_interceptor_guard does not exist" }));

        await manager.InstallAsync(spec, CancellationToken.None);
        Assert.That(await manager.FindDifferencesAsync(spec, CancellationToken.None), Is.Empty);
    }

    [Test]
    public async Task A_rejected_script_leaves_the_installed_table_alone()
    {
        var nft = new NftClient(networkNamespace);
        var manager = new RulesetManager(nft);
        await manager.InstallAsync(Spec, CancellationToken.None);

        var broken = RulesetRenderer.Render(Spec).Replace("redirect to :10025", "redirect to :notaport", StringComparison.Ordinal);
        Assert.That(() => nft.ApplyAsync(broken, CancellationToken.None), Throws.InstanceOf<NftCommandException>().With.Property("ExitCode").EqualTo(1));

        Assert.That(await manager.IsInstalledAsExpectedAsync(Spec, CancellationToken.None), Is.True);
    }

    [Test]
    public void Listing_in_a_namespace_that_does_not_exist_is_an_error()
    {
        var nft = new NftClient(networkNamespace + "-missing");

        Assert.That(() => nft.ListTableAsync("smtp_interceptor", CancellationToken.None), Throws.InstanceOf<NftCommandException>());
    }

    private static int Ip(params string[] arguments)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        process.WaitForExit();
        return process.ExitCode;
    }
}
