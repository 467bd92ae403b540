using System.Text.Json;
using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

/// <summary>
/// The guard's two rules for a customer's packets that no NAT rule sees (remarks of RulesetRenderer.Guard.cs): SYNs that
/// conntrack files under a connection it has, dropped before the pass, and packets it marks invalid, dropped. The samples
/// are real nft listings (see <see cref="SampleCapture"/>).
/// </summary>
public class StrayPacketRulesTests
{
    private const string Table = "table inet smtp_interceptor_guard: ";

    private static readonly RulesetSpec DefaultSpec = new("smtp_interceptor", 10025, [25], [0]);

    [Test]
    public void The_guard_as_installed_has_both_on_every_guarded_port()
    {
        Assert.That(GuardDifferences("guard-default.json"), Is.Empty);
        Assert.That(GuardDifferences("guard-everything.json", RulesetRendererTests.Everything), Is.Empty);
    }

    [Test]
    public void A_missing_drop_of_known_connections_syns_is_reported()
    {
        Assert.That(GuardDifferences("guard-known-syn-drop-missing.json"), Is.EqualTo(new[]
        {
            Table + "no rule in chain output_guard refuses SYNs to port(s) 25 that conntrack files under a connection it has (tcp flags syn / syn,ack ct state established,related): a customer who reuses the port of an exempt user's ended connection, or answers a packet forged from a mail server's port 25, connects to it directly",
        }));
    }

    [Test]
    public void The_drop_after_the_pass_is_reported()
    {
        // The pass accepts established packets, and these SYNs are established: the drop would never see one.
        Assert.That(GuardDifferences("guard-known-syn-drop-after-pass.json"), Is.EqualTo(new[]
        {
            Table + "the rule refusing SYNs of known connections in chain output_guard comes after the rule for open connections, which lets those SYNs out first",
        }));
    }

    [TestCase("guard-known-syn-drop-accepts.json", "accepts")]
    [TestCase("guard-known-syn-drop-customers-only.json", "rejects")]
    [TestCase("guard-known-syn-drop-second-dport.json", "rejects")]
    [TestCase("guard-known-syn-drop-related-only.json", "rejects")]
    public void A_rule_of_another_shape_before_the_pass_is_not_the_drop(string sample, string does)
    {
        // Accepting them lets them out; sparing all but known customers lets out a SYN without an owning socket (a kernel
        // socket a user drives, third attack review); a second dport match (tcp dport 1 tcp dport 25) matches nothing; with related alone, the
        // established SYN of a reused port goes on to the pass (second attack review).
        var differences = GuardDifferences(sample);

        Assert.That(differences, Has.Count.EqualTo(3));
        Assert.That(differences[0], Does.StartWith(Table + "the rule for open connections in chain output_guard is not its first"));
        Assert.That(differences[1], Does.StartWith(Table + "no rule in chain output_guard refuses SYNs to port(s) 25"));
        Assert.That(differences[2], Does.StartWith(Table + "unexpected rule in chain output_guard: it " + does));
    }

    [Test]
    public void Exempt_users_not_accepted_in_every_state_before_the_refusal_are_reported()
    {
        // The refusal has no user match: an exempt user's SYN on a stale entry would be refused.
        const string exempt = Table + "the rule for set exempt_uids in chain output_guard does not accept every packet of exempt users before the refusal of SYNs of known connections: a stale conntrack entry can make the daemon's own connections fail";
        Assert.That(GuardDifferences("guard-exempt-after-syn-refusal.json"), Is.EqualTo(new[] { exempt }));

        // New connections only: before the pass it is then no longer the guard's exempt rule either.
        var newOnly = GuardDifferences("guard-exempt-new-only.json");
        Assert.That(newOnly, Has.Count.EqualTo(2));
        Assert.That(newOnly[0], Does.StartWith(Table + "the rule for open connections in chain output_guard is not its first"));
        Assert.That(newOnly[1], Is.EqualTo(exempt));
    }

    [Test]
    public void A_missing_drop_of_invalid_packets_is_reported()
    {
        Assert.That(GuardDifferences("guard-invalid-drop-missing.json"), Is.EqualTo(new[]
        {
            Table + "no rule in chain output_guard drops customers' packets to port(s) 25 that conntrack marks invalid or does not track: no NAT applies to them, so they leave directly",
        }));
    }

    [Test]
    public void A_drop_of_invalid_packets_that_lets_untracked_ones_out_is_reported()
    {
        // Another table's notrack rule would make the customers' SYNs untracked: no NAT, and no state the other rules match.
        var differences = GuardDifferences("guard-untracked-drop-invalid-only.json");

        Assert.That(differences, Has.Count.EqualTo(2));
        Assert.That(differences[0], Does.StartWith(Table + "no rule in chain output_guard drops customers' packets to port(s) 25 that conntrack marks invalid or does not track"));
        Assert.That(differences[1], Does.StartWith(Table + "unexpected rule in chain output_guard: it does something else"));
    }

    [Test]
    public void A_drop_of_invalid_packets_missing_a_port_is_reported()
    {
        Assert.That(GuardDifferences("guard-invalid-drop-missing-a-port.json", RulesetRendererTests.Everything), Is.EqualTo(new[]
        {
            Table + "the rule dropping customers' untracked and invalid packets in chain output_guard does not cover port(s) 2525",
        }));
    }

    [Test]
    public void Neither_passes_for_a_rule_the_other_checks_look_for()
    {
        // Each matches SYNs of known connections or invalid packets only: taken for the guard's refusal or an exemption it
        // would leave the first packets of unredirected connections unrefused.
        using var listed = JsonDocument.Parse(NetfilterTestData.Read(Path.Combine("Samples", "guard-default.json")));
        var rules = NftJson.Objects(listed, DefaultSpec.GuardTable).Where(o => o.Kind == "rule")
            .Select(o => NftJson.ParseRule(o.Body, [])).ToList();

        Assert.That(rules.Select(r => r.Stray), Is.EqualTo(new[]
        {
            NftJson.StrayRule.None, NftJson.StrayRule.RefusesKnownSyn, NftJson.StrayRule.None, NftJson.StrayRule.None,
            NftJson.StrayRule.None, NftJson.StrayRule.None, NftJson.StrayRule.DropsUntracked,
        }));
        Assert.That(rules.Where(r => r.Stray != NftJson.StrayRule.None), Has.All.Property(nameof(NftJson.Rule.HasOtherMatch)).True);
    }

    private static IReadOnlyList<string> GuardDifferences(string sample, RulesetSpec? spec = null)
    {
        using var listed = JsonDocument.Parse(NetfilterTestData.Read(Path.Combine("Samples", sample)));
        return RulesetVerifier.FindGuardDifferences(listed, spec ?? DefaultSpec);
    }
}
