using System.Text.Json;
using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

/// <summary>
/// The guard's two rules for packets to an SMTP port that no NAT rule sees (remarks of RulesetRenderer.Guard.cs): replies
/// to a connection opened from outside, refused before the pass, and packets conntrack marks invalid, dropped. The samples
/// are real nft listings (see <see cref="SampleCapture"/>).
/// </summary>
public class StrayPacketRulesTests
{
    private const string Table = "table inet smtp_interceptor_guard: ";

    private static readonly RulesetSpec DefaultSpec = new("smtp_interceptor", 10025, [25], [0]);

    [Test]
    public void The_guard_as_installed_has_both_on_every_guarded_port()
    {
        Assert.That(GuardDifferences("guard-everything.json", RulesetRendererTests.Everything), Is.Empty);
    }

    [Test]
    public void A_missing_refusal_of_replies_is_reported()
    {
        Assert.That(GuardDifferences("guard-reply-refusal-missing.json"), Is.EqualTo(new[]
        {
            Table + "no rule in chain output_guard refuses replies to port(s) 25 (ct direction reply): a customer who listens on a port and gets one packet from a mail server's port 25 connects back to it directly",
        }));
    }

    [Test]
    public void A_refusal_of_replies_after_the_pass_is_reported()
    {
        // The pass accepts established packets, and a reply is established: the refusal would never see one.
        Assert.That(GuardDifferences("guard-reply-refusal-after-pass.json"), Is.EqualTo(new[]
        {
            Table + "the rule refusing replies in chain output_guard comes after the rule for open connections, which lets those replies out first",
        }));
    }

    [Test]
    public void A_rule_that_accepts_replies_is_not_the_refusal()
    {
        var differences = GuardDifferences("guard-reply-refusal-accepts.json");

        Assert.That(differences, Has.Count.EqualTo(3));
        Assert.That(differences[0], Does.StartWith(Table + "the rule for open connections in chain output_guard is not its first"));
        Assert.That(differences[1], Does.StartWith(Table + "no rule in chain output_guard refuses replies to port(s) 25"));
        Assert.That(differences[2], Does.StartWith(Table + "unexpected rule in chain output_guard: it accepts"));
    }

    [Test]
    public void A_missing_drop_of_invalid_packets_is_reported()
    {
        Assert.That(GuardDifferences("guard-invalid-drop-missing.json"), Is.EqualTo(new[]
        {
            Table + "no rule in chain output_guard drops packets to port(s) 25 that conntrack marks invalid: no NAT rule sees them, so they leave directly",
        }));
    }

    [Test]
    public void A_drop_of_invalid_packets_missing_a_port_is_reported()
    {
        Assert.That(GuardDifferences("guard-invalid-drop-missing-a-port.json", RulesetRendererTests.Everything), Is.EqualTo(new[]
        {
            Table + "the rule dropping invalid packets in chain output_guard does not cover port(s) 2525",
        }));
    }

    [Test]
    public void Neither_passes_for_a_refusal_of_new_connections()
    {
        // Each matches replies or invalid packets only: taken for the guard's refusal it would leave the first packets of
        // unredirected connections unrefused.
        var spec = DefaultSpec;
        using var listed = JsonDocument.Parse(NetfilterTestData.Read(Path.Combine("Samples", "guard-default.json")));
        var rules = NftJson.Objects(listed, spec.GuardTable).Where(o => o.Kind == "rule")
            .Select(o => NftJson.ParseRule(o.Body, [])).ToList();

        Assert.That(rules.Select(r => r.Stray), Is.EqualTo(new[]
        {
            NftJson.StrayRule.RefusesReplies, NftJson.StrayRule.None, NftJson.StrayRule.None, NftJson.StrayRule.None,
            NftJson.StrayRule.None, NftJson.StrayRule.None, NftJson.StrayRule.DropsInvalid,
        }));
        Assert.That(rules.Where(r => r.Stray != NftJson.StrayRule.None), Has.All.Property(nameof(NftJson.Rule.HasOtherMatch)).True);
    }

    private static IReadOnlyList<string> GuardDifferences(string sample, RulesetSpec? spec = null)
    {
        using var listed = JsonDocument.Parse(NetfilterTestData.Read(Path.Combine("Samples", sample)));
        return RulesetVerifier.FindGuardDifferences(listed, spec ?? DefaultSpec);
    }
}
