using System.Text.Encodings.Web;
using System.Text.Json;
using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

/// <summary>
/// The <c>nft -j</c> samples under Samples/, which the verifier's unit tests read, are what the real nft of this machine
/// prints: each is the rendered ruleset (or a deliberately altered copy, see <see cref="Samples"/>) applied in a
/// throwaway network namespace, with a few connections made so that some counters are not zero, then listed. A sample
/// that no longer matches (the renderer changed, or nft prints differently) fails; rewrite them all with
/// <c>CAPTURE_SAMPLES=1 dotnet test tests/Interceptor.Tests --filter FullyQualifiedName~SampleCapture</c> (root).
/// previous-version.json is not recreated: it is the table of the release before the filter chain.
/// </summary>
[NonParallelizable]
public class SampleCapture
{
    private const uint Nobody = 65534;

    private static readonly RulesetSpec Default = new("smtp_interceptor", 10025, [25], [0]);

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Name, spec, how the rendered script is altered, and the connections made before listing.</summary>
    private static readonly (string Name, RulesetSpec Spec, Func<string, string> Alter, Action<TestNamespace> Traffic)[] Samples =
    [
        ("default.json", Default, s => s, RedirectOne),
        ("multiple-ports-and-uids.json", new("smtp_interceptor", 10025, [25, 587, 2525], [0, 105, 1000]), s => s, _ => { }),
        ("empty-exempt-set.json", Default with { ExemptUids = [] }, s => s, _ => { }),
        ("everything.json", RulesetRendererTests.Everything, s => s, EverythingTraffic),
        ("missing-set-element.json", Default, s => s, RedirectOne),
        ("wrong-redirect-port.json", Default, s => s.Replace("redirect to :10025", "redirect to :10026", StringComparison.Ordinal), RedirectOne),
        ("wrong-intercepted-port.json", Default, s => ReplaceInLine(s, "meta nfproto ipv4 tcp dport 25", "dport 25", "dport 26"), _ => { }),
        ("missing-ipv6-rule.json", Default, s => RemoveLine(s, "meta nfproto ipv6 tcp dport"), RedirectOne),
        ("exempt-after-redirect.json", Default, s => MoveAfter(s, "meta skuid @exempt_uids counter accept", "meta nfproto ipv6 tcp dport"), _ => { }),
        ("extra-accept-rule.json", Default, s => InsertAfter(s, "meta skuid @exempt_uids counter accept", "tcp dport 25 accept comment \"added by hand\""), RedirectOne),
        ("exempt-after-reject.json", Default, s => MoveAfter(s, "@exempt_uids ct state new counter accept", "@suspended_uids ct state new"), _ => { }),
        ("routes-after-redirect.json", RulesetRendererTests.Everything, s => MoveAfter(MoveAfter(s, "@allowed_routes_v6", "meta nfproto ipv6 tcp dport"), "@allowed_routes_v4", "meta nfproto ipv6 tcp dport"), _ => { }),
        ("missing-blocked-rule.json", RulesetRendererTests.Everything, s => RemoveLine(s, "tcp dport 465 ct state new"), _ => { }),
        ("extra-filter-rule.json", RulesetRendererTests.Everything, s => InsertAfter(s, "@suspended_uids ct state new", "tcp dport 587 meta skuid 1001 drop comment \"added by hand\""), _ => { }),
        ("missing-subuid-rule.json", RulesetRendererTests.Everything, s => RemoveLine(s, "@suspended_subuids ct state new"), _ => { }),
        ("rate-limits.json", RulesetRendererTests.RateLimited, s => s, _ => { }),
        ("rate-limit-tampered.json", RulesetRendererTests.RateLimited, s => ReplaceInLine(s, "update @ratelimit_meter", "over 20/second", "over 1000/second"), _ => { }),
        ("rate-limit-rule-missing.json", RulesetRendererTests.RateLimited, s => RemoveLine(s, "update @ratelimit_meter"), _ => { }),
        ("rate-limit-without-listener.json", RulesetRendererTests.RateLimited, s => ReplaceInLine(s, "update @ratelimit_meter", "2525, 10025 }", "2525 }"), _ => { }),
        ("user-rate-tampered.json", RulesetRendererTests.RateLimited, s => ReplaceInLine(s, "meta skuid 1005 ct state new", "burst 10 packets", "burst 100 packets"), _ => { }),
        ("subuid-rates.json", RulesetRendererTests.SubordinateRated, s => s, _ => { }),
        ("subuid-single-uid.json", RulesetRendererTests.SubordinateSingleUid, s => s, _ => { }),
        ("subuid-rate-tampered.json", RulesetRendererTests.SubordinateRated, s => ReplaceInLine(s, "meta skuid 600000-665535", "600000-665535", "600000-600001"), _ => { }),
        ("subuid-meter-exclusion-missing.json", RulesetRendererTests.SubordinateRated, s => ReplaceInLine(s, "update @ratelimit_meter", "meta skuid != @ratelimit_subuids ", ""), _ => { }),
        ("suspended-rule-missing-a-port.json", RulesetRendererTests.Everything, s => ReplaceInLine(s, "@suspended_uids ct state new", "{ 25, 587, 2525 }", "{ 25, 587 }"), _ => { }),
        ("open-pass-admits-new.json", Default, s => ReplaceInLine(s, OpenPass, "established,related", "established,related,new"), _ => { }),
        ("open-pass-missing.json", Default, s => RemoveLine(s, OpenPass), _ => { }),
        ("open-pass-not-first.json", Default, s => MoveAfter(s, OpenPass, "@exempt_uids ct state new counter accept"), _ => { }),
        ("suspended-rule-for-open-connections.json", Default, s => ReplaceInLine(s, "@suspended_uids ct state new", "ct state new", "ct state established"), _ => { }),
        // guard-*: the guard table is listed instead of the main one.
        ("guard-default.json", Default, s => s, _ => { }),
        ("guard-open-pass-admits-new.json", Default, s => InGuard(s, g => ReplaceInLine(g, OpenPass, "established,related", "new,established,related")), _ => { }),
        ("guard-open-pass-missing.json", Default, s => InGuard(s, g => RemoveLine(g, OpenPass)), _ => { }),
        ("guard-known-syn-drop-missing.json", Default, s => InGuard(s, g => RemoveLine(g, KnownSynDropped)), _ => { }),
        ("guard-known-syn-drop-after-pass.json", Default, s => InGuard(s, g => MoveAfter(g, KnownSynDropped, OpenPass)), _ => { }),
        ("guard-known-syn-drop-accepts.json", Default, s => InGuard(s, g => ReplaceInLine(g, KnownSynDropped, "counter reject with tcp reset", "counter accept")), _ => { }),
        ("guard-known-syn-drop-related-only.json", Default, s => InGuard(s, g => ReplaceInLine(g, KnownSynDropped, "established,related", "related")), _ => { }),
        ("guard-untracked-drop-invalid-only.json", Default, s => InGuard(s, g => ReplaceInLine(g, InvalidDropped, "invalid,untracked", "invalid")), _ => { }),
        ("guard-known-syn-drop-customers-only.json", Default, s => InGuard(s, g => ReplaceInLine(g, KnownSynDropped, "tcp flags", "meta skuid != @exempt_uids tcp flags")), _ => { }),
        ("guard-exempt-new-only.json", Default, s => InGuard(s, g => ReplaceInLine(g, GuardExempt, "counter accept", "ct state new counter accept")), _ => { }),
        ("guard-exempt-after-syn-refusal.json", Default, s => InGuard(s, g => MoveAfter(g, GuardExempt, KnownSynDropped)), _ => { }),
        ("guard-known-syn-drop-second-dport.json", Default, s => InGuard(s, g => ReplaceInLine(g, KnownSynDropped, "tcp dport 25 ", "tcp dport 1 tcp dport 25 ")), _ => { }),
        ("guard-invalid-drop-missing.json", Default, s => InGuard(s, g => RemoveLine(g, InvalidDropped)), _ => { }),
        ("guard-invalid-drop-missing-a-port.json", RulesetRendererTests.Everything, s => InGuard(s, g => ReplaceInLine(g, InvalidDropped, "{ 25, 465, 587, 2525 }", "{ 25, 465, 587 }")), _ => { }),
        ("guard-everything.json", RulesetRendererTests.Everything, s => s, _ => { }),
        ("guard-stray-log-other-group.json", RulesetRendererTests.Everything, s => InGuard(s, g => ReplaceInLine(g, KnownSynDropped, "group 25", "group 26")), _ => { }),
        ("guard-stray-log-missing.json", RulesetRendererTests.Everything, s => InGuard(s, g => ReplaceInLine(g, InvalidDropped, $"log prefix \"{RulesetSpec.StrayPacketLogPrefix}\" group 25 ", "")), _ => { }),
        ("guard-stray-log-unasked.json", Default, s => InGuard(s, g => ReplaceInLine(g, KnownSynDropped, "counter reject", "counter log group 25 reject")), _ => { }),
        ("guard-exempt-logs.json", RulesetRendererTests.Everything, s => InGuard(s, g => ReplaceInLine(g, GuardExempt, "counter accept", "counter log group 25 accept")), _ => { }),
        ("guard-stray-log-twice.json", RulesetRendererTests.Everything, s => InGuard(s, g => ReplaceInLine(g, KnownSynDropped, "counter log", "counter log prefix \"dmesg\" log")), _ => { }),
        ("guard-stray-log-before-matches.json", RulesetRendererTests.Everything, s => InGuard(s, g => ReplaceInLine(g, KnownSynDropped, "tcp flags syn / syn,ack ct state established,related counter log prefix \"smtp-interceptor stray-syn\" group 25", "log prefix \"smtp-interceptor stray-syn\" group 25 tcp flags syn / syn,ack ct state established,related counter")), _ => { }),
        ("guard-stray-log-group-zero.json", Default, s => InGuard(s, g => ReplaceInLine(g, KnownSynDropped, "counter reject", "counter log group 0 reject")), _ => { }),
        ("dormant.json", Default, s => s.Replace("table inet smtp_interceptor {\n", "table inet smtp_interceptor {\n    flags dormant\n", StringComparison.Ordinal), _ => { }),
        ("guard-dormant.json", Default, s => InGuard(s, g => g.Replace("table inet smtp_interceptor_guard {\n", "table inet smtp_interceptor_guard {\n    flags dormant\n", StringComparison.Ordinal)), _ => { }),
        // metrics-*: the metrics endpoint's set and two rules (MetricsRulesTests).
        ("metrics.json", MetricsRulesTests.Metrics, s => s, MetricsTraffic),
        ("metrics-v6-rate-limited.json", MetricsRulesTests.MetricsV6, s => s, _ => { }),
        ("metrics-refusal-missing.json", MetricsRulesTests.Metrics, s => RemoveLine(s, MetricsRefusal), _ => { }),
        ("metrics-refusal-after-pass.json", MetricsRulesTests.Metrics, s => MoveAfter(s, MetricsRefusal, OpenPass), _ => { }),
        ("metrics-accept-after-refusal.json", MetricsRulesTests.Metrics, s => MoveAfter(s, MetricsAccept, MetricsRefusal), _ => { }),
        ("metrics-refusal-other-port.json", MetricsRulesTests.Metrics, s => ReplaceInLine(s, MetricsRefusal, "dport 9325", "dport 9326"), _ => { }),
        ("metrics-refusal-new-only.json", MetricsRulesTests.Metrics, s => ReplaceInLine(s, MetricsRefusal, "syn,ack counter", "syn,ack ct state new counter"), _ => { }),
        ("metrics-set-element-missing.json", MetricsRulesTests.Metrics with { MetricsUids = [0] }, s => s, _ => { }),
        ("metrics-drop-missing.json", MetricsRulesTests.Metrics, s => RemoveLine(s, MetricsDrop), _ => { }),
        ("metrics-drop-after-pass.json", MetricsRulesTests.Metrics, s => MoveAfter(s, MetricsDrop, OpenPass), _ => { }),
        ("metrics-drop-other-uid.json", MetricsRulesTests.Metrics, s => ReplaceInLine(s, MetricsDrop, "skuid != 0", "skuid != 1010"), _ => { }),
        ("metrics-drop-accepted-first.json", MetricsRulesTests.Metrics, s => InsertBefore(s, MetricsOwn, "tcp sport 9325 accept comment \"added by hand\""), _ => { }),
        ("metrics-synack-drop-missing.json", MetricsRulesTests.Metrics, s => RemoveLine(s, MetricsSynAckDrop), _ => { }),
        ("metrics-own-after-synack-drop.json", MetricsRulesTests.Metrics, s => MoveAfter(s, MetricsOwn, MetricsSynAckDrop), _ => { }),
        ("metrics-exempt-widened-first.json", MetricsRulesTests.Metrics, s => MoveBefore(ReplaceInLine(s, "@exempt_uids ct state new counter accept", "{ 25, 10025 } meta skuid @exempt_uids ct state new", "{ 25, 9325, 10025 } meta skuid @exempt_uids"), "@exempt_uids counter accept comment \"Exempt users (set exempt_uids) are never", MetricsAccept), _ => { }),
    ];

    private const string MetricsAccept = "meta skuid @metrics_users counter accept";

    private const string MetricsRefusal = "Anyone else's connection to the metrics endpoint";

    private const string MetricsDrop = "Another user's socket answering from the metrics endpoint's port";

    private const string MetricsOwn = "smtp-interceptor's own answers from the metrics endpoint's port";

    private const string MetricsSynAckDrop = "Any other local SYN-ACK from the metrics endpoint's port";

    private const string KnownSynDropped = "tcp flags syn / syn,ack";

    private const string GuardExempt = "meta skuid @exempt_uids counter accept";

    private const string InvalidDropped = "ct state invalid";

    private const string OpenPass = "ct state established,related accept";

    [Test]
    public async Task The_samples_are_what_this_machines_nft_prints_for_them()
    {
        var rewrite = Environment.GetEnvironmentVariable("CAPTURE_SAMPLES") == "1";
        var stale = new List<string>();
        foreach (var (name, spec, alter, traffic) in Samples)
        {
            using var ns = TestNamespace.CreateOrSkip(needsConnections: true);
            await ns.Nft.ApplyAsync(alter(RulesetRenderer.Render(spec)), CancellationToken.None);
            traffic(ns);
            using var listed = await ns.Nft.ListTableAsync(name.StartsWith("guard-", StringComparison.Ordinal) ? spec.GuardTable : spec.Table, CancellationToken.None);
            var text = JsonSerializer.Serialize(listed!.RootElement, Indented).Replace("\r\n", "\n", StringComparison.Ordinal) + "\n";
            var path = Path.Combine(NetfilterTestData.SourceDirectory, "Samples", name);
            if (rewrite)
            {
                await File.WriteAllTextAsync(path, text);
            }
            else if (await File.ReadAllTextAsync(path) != text)
            {
                stale.Add(name);
            }
        }

        Assert.That(stale, Is.Empty, "these samples differ from what nft prints now; rewrite them with CAPTURE_SAMPLES=1 and review the diff");
    }

    // One redirected connection (nothing listens on 10025, so it is refused, but the redirect counts it).
    private static void RedirectOne(TestNamespace ns) => ns.Connect(Nobody, "127.0.0.2", 25);

    private static void EverythingTraffic(TestNamespace ns)
    {
        ns.Exec(["ip", "address", "add", "192.0.2.10/32", "dev", "lo"]);
        ns.Listen("127.0.0.1:10025", "192.0.2.10:2525");
        ns.Connect(1001, "127.0.0.2", 25);                // suspended: refused by the kernel
        ns.Connect(Nobody, "127.0.0.2", 465);             // blocked port: refused by the kernel
        ns.Connect(0, "127.0.0.2", 465);                  // exempt: passes the filter chain
        ns.Connect(1003, "192.0.2.10", 2525);             // allowed route: goes out directly
        ns.Connect(Nobody, "127.0.0.2", 587);             // everyone else: redirected
    }

    // A customer (nobody) is refused by the kernel. No scraper connects: the packets a closing connection sends from the
    // endpoint's port (counted by the daemon's own accept) depend on which side closes first, so the count would vary.
    private static void MetricsTraffic(TestNamespace ns) => ns.Connect(Nobody, "127.0.0.1", 9325);

    private static List<string> Lines(string script) => [.. script.Split('\n')];

    private static int IndexOf(List<string> lines, string marker)
    {
        var index = lines.FindIndex(l => l.Contains(marker, StringComparison.Ordinal));
        return index >= 0 ? index : throw new InvalidOperationException($"no line contains {marker}");
    }

    private static string RemoveLine(string script, string marker)
    {
        var lines = Lines(script);
        lines.RemoveAt(IndexOf(lines, marker));
        return string.Join('\n', lines);
    }

    private static string ReplaceInLine(string script, string marker, string from, string to)
    {
        var lines = Lines(script);
        var index = IndexOf(lines, marker);
        lines[index] = lines[index].Replace(from, to, StringComparison.Ordinal);
        return string.Join('\n', lines);
    }

    private static string InsertAfter(string script, string marker, string rule)
    {
        var lines = Lines(script);
        var index = IndexOf(lines, marker);
        lines.Insert(index + 1, new string(' ', 8) + rule);
        return string.Join('\n', lines);
    }

    private static string InsertBefore(string script, string marker, string rule)
    {
        var lines = Lines(script);
        lines.Insert(IndexOf(lines, marker), new string(' ', 8) + rule);
        return string.Join('\n', lines);
    }

    // The same change, made to the guard table's part of the script only (its lines repeat some of the main table's).
    private static string InGuard(string script, Func<string, string> alter)
    {
        var start = script.IndexOf("table inet smtp_interceptor_guard {\n", StringComparison.Ordinal);
        return script[..start] + alter(script[start..]);
    }

    private static string MoveBefore(string script, string marker, string before)
    {
        var lines = Lines(script);
        var line = lines[IndexOf(lines, marker)];
        lines.Remove(line);
        lines.Insert(IndexOf(lines, before), line);
        return string.Join('\n', lines);
    }

    private static string MoveAfter(string script, string marker, string after)
    {
        var lines = Lines(script);
        var line = lines[IndexOf(lines, marker)];
        lines.Remove(line);
        lines.Insert(IndexOf(lines, after) + 1, line);
        return string.Join('\n', lines);
    }
}
