using System.Text.Json;
using System.Text.RegularExpressions;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The operations files the package installs under /usr/share/smtp-interceptor/ (packaging/monitoring/): the Prometheus
/// alert rules pass `promtool check rules` and their unit tests (`promtool test rules`), those unit tests really prove
/// each alert (a rule that never fires, or always fires, fails them), the dashboard is Grafana JSON with the panels the
/// README promises, and every metric the rules and the dashboard name is exported by a freshly started daemon before
/// any mail (so no alert misfires on a series that does not exist yet). Names are parsed out of the files, so the test
/// follows them.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed partial class MonitoringFilesTests
{
    private const string MetricsListen = "127.0.0.1:9325";
    private const string OwnerLookupHistogram = "smtpi_owner_lookup_seconds";
    private const string RulesFile = "smtp-interceptor.rules.yml";
    private const string RulesTestFile = "smtp-interceptor.rules.test.yml";
    private const string DashboardFile = "smtp-interceptor.dashboard.json";

    private static readonly string[] DashboardPanels =
    [
        "Transactions by outcome", "Refusals by cause", "Suspensions", "Sessions active", "Owner-lookup latency",
        "Upstream failures and replies", "Store health",
    ];

    private static string MonitoringDirectory
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "packaging", "monitoring");
                if (File.Exists(Path.Combine(candidate, RulesFile)))
                {
                    return candidate;
                }
            }

            throw new InvalidOperationException($"no packaging/monitoring/{RulesFile} above {AppContext.BaseDirectory}");
        }
    }

    /// <summary>promtool (Debian's prometheus package); a missing one skips, but fails under CI.</summary>
    private static string Promtool()
    {
        if (Requirements.Which("promtool") is { } promtool)
        {
            return promtool;
        }

        const string reason = "promtool is missing (package prometheus; scripts/lib/ensure-deps.sh installs it)";
        if (Requirements.UnderCi)
        {
            Assert.Fail(reason + " (CI=true: this test may not be skipped)");
        }

        Assert.Ignore(reason);
        return "";
    }

    /// <summary>An alert that tells the admin to run a command that does not exist (it once said `unsuspend`) fails here.</summary>
    [Test]
    public void Every_command_the_alerts_and_the_dashboard_tell_the_admin_to_run_is_a_verb_of_the_command_line()
    {
        var verbs = Interceptor.Daemon.Commands.CommandLineDefinition.Create(Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance)
            .Root.Subcommands.Select(c => c.Name).ToHashSet(StringComparer.Ordinal);
        var named = new[] { RulesFile, RulesTestFile, DashboardFile }
            .SelectMany(f => CommandMention().Matches(File.ReadAllText(Path.Combine(MonitoringDirectory, f))))
            .Select(m => m.Groups[1].Value)
            .ToList();

        Assert.That(named, Is.Not.Empty, "the alerts name the commands that show and lift a suspension");
        Assert.That(named.Where(v => !verbs.Contains(v)).Distinct(), Is.Empty, "verbs: " + string.Join(", ", verbs.Order()));
    }

    [Test]
    public async Task Promtool_checks_the_rules_and_their_unit_tests_pass()
    {
        var promtool = Promtool();
        var check = await ProcessRunner.RunAsync(promtool, ["check", "rules", Path.Combine(MonitoringDirectory, RulesFile)], TimeSpan.FromSeconds(60));
        var test = await ProcessRunner.RunAsync(promtool, ["test", "rules", Path.Combine(MonitoringDirectory, RulesTestFile)], TimeSpan.FromSeconds(60));
        Assert.Multiple(() =>
        {
            Assert.That(check.Succeeded, Is.True, check.Describe());
            Assert.That(check.Stdout, Does.Contain($"SUCCESS: {AlertNames().Count} rules found"), check.Describe());
            Assert.That(test.Succeeded, Is.True, test.Describe());
        });
    }

    /// <summary>
    /// The unit tests prove every alert both ways: with each rule's expression replaced by one that never fires, every
    /// alert's firing case fails; with one that always fires, every alert's silent case fails.
    /// </summary>
    [TestCase("vector(0) > 1", "never fires")]
    [TestCase("vector(1)", "always fires")]
    public async Task The_rule_unit_tests_fail_for_every_alert_whose_rule_is_broken(string brokenExpression, string what)
    {
        var promtool = Promtool();
        var scratch = Directory.CreateTempSubdirectory("smtpi-rules-");
        try
        {
            var rules = await File.ReadAllTextAsync(Path.Combine(MonitoringDirectory, RulesFile));
            var broken = SingleLineExpression().Replace(MultiLineExpression().Replace(rules, "expr: BROKEN\n"), "expr: BROKEN");
            await File.WriteAllTextAsync(Path.Combine(scratch.FullName, RulesFile), broken.Replace("expr: BROKEN", $"expr: {brokenExpression}", StringComparison.Ordinal));
            File.Copy(Path.Combine(MonitoringDirectory, RulesTestFile), Path.Combine(scratch.FullName, RulesTestFile));

            var test = await ProcessRunner.RunAsync(promtool, ["test", "rules", Path.Combine(scratch.FullName, RulesTestFile)], TimeSpan.FromSeconds(60));
            Assert.That(test.Succeeded, Is.False, $"every rule {what}, yet the unit tests pass\n" + test.Describe());
            var output = test.Stdout + test.Stderr;
            Assert.Multiple(() =>
            {
                foreach (var alert in AlertNames())
                {
                    Assert.That(output, Does.Contain($"alertname: {alert},"), $"no unit test caught {alert} when it {what}\n" + test.Describe());
                }
            });
        }
        finally
        {
            scratch.Delete(recursive: true);
        }
    }

    [Test]
    public async Task The_dashboard_is_grafana_json_with_a_query_in_every_panel()
    {
        using var dashboard = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(MonitoringDirectory, DashboardFile)));
        var root = dashboard.RootElement;
        var panels = root.GetProperty("panels").EnumerateArray().ToList();
        var titles = panels.Select(p => p.GetProperty("title").GetString()).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(root.GetProperty("title").GetString(), Is.EqualTo("smtp-interceptor"));
            Assert.That(root.GetProperty("uid").GetString(), Is.Not.Empty);
            Assert.That(root.GetProperty("schemaVersion").GetInt32(), Is.GreaterThan(0));
            Assert.That(titles, Is.SupersetOf(DashboardPanels));
            Assert.That(panels.Select(p => p.GetProperty("id").GetInt32()), Is.Unique, "panel ids");
            foreach (var panel in panels)
            {
                var targets = panel.GetProperty("targets").EnumerateArray().ToList();
                Assert.That(targets, Is.Not.Empty, $"panel {panel.GetProperty("title")} has no query");
                Assert.That(targets.Select(t => t.GetProperty("expr").GetString()), Has.All.Contain("smtpi_"), $"panel {panel.GetProperty("title")}");
                Assert.That(panel.TryGetProperty("gridPos", out _), Is.True, $"panel {panel.GetProperty("title")} has no gridPos");
            }
        });
    }

    [Test]
    public async Task Every_metric_the_rules_and_the_dashboard_name_is_exported_from_the_start()
    {
        var referenced = await ReferencedSeriesAsync();
        Assert.That(referenced.Select(r => r.Name).Distinct().Count(), Is.GreaterThan(15), "the parser found the metric names");

        await using var s = await Scenario.StartAsync(config: Config(("Metrics.Listen", MetricsListen)));

        // No mail has passed: every counter an alert or a panel needs must already be there (at 0).
        var get = await s.Ns.RunAsync(Requirements.Python,
        [
            "-I", "-c",
            $"import urllib.request; r = urllib.request.urlopen('http://{MetricsListen}/metrics', timeout=10); print(r.read().decode())",
        ]);
        Assert.That(get.Succeeded, Is.True, get.Describe() + s.Describe());
        // The exporter writes an empty label set as "{}" (the same series to Prometheus): compared here by the bare name.
        var lines = get.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('#'))
            .Select(l => l.Replace("{} ", " ", StringComparison.Ordinal)).ToList();
        var samples = lines.Select(l => l.Split(' ')[0]).ToList();
        var exported = samples.Select(series => series.Split('{')[0]).ToHashSet(StringComparer.Ordinal);

        // A histogram has no series before its first observation (an instrument cannot publish a count of 0 without
        // inventing a measurement): the owner-lookup panel shows data from the first redirected connection on.
        referenced = [.. referenced.Where(r => !r.Name.StartsWith(OwnerLookupHistogram, StringComparison.Ordinal))];

        Assert.Multiple(() =>
        {
            foreach (var (name, label, value, file) in referenced)
            {
                Assert.That(exported, Does.Contain(name), $"{file} uses {name}, which the daemon does not export\n" + get.Stdout);
                if (label is not null)
                {
                    Assert.That(samples, Has.Some.StartsWith(name + "{").And.Contain($"{label}=\"{value}\""),
                        $"{file} selects {name}{{{label}=\"{value}\"}}, which the daemon does not export from the start\n" + get.Stdout);
                }
            }

            Assert.That(samples, Does.Contain("smtpi_listener_lockdown"), get.Stdout);
            Assert.That(samples, Does.Contain("smtpi_store_healthy"), get.Stdout);
        });

        var values = lines.Where(l => l.StartsWith("smtpi_listener_lockdown ", StringComparison.Ordinal) || l.StartsWith("smtpi_store_healthy ", StringComparison.Ordinal));
        Assert.That(values, Is.EquivalentTo(new[] { "smtpi_listener_lockdown 0", "smtpi_store_healthy 1" }), "a healthy daemon redirects and its store writes\n" + get.Stdout);
    }

    /// <summary>Every smtpi_ name in the rules and the dashboard's queries, with each equality label matcher on it.</summary>
    private static async Task<List<(string Name, string? Label, string? Value, string File)>> ReferencedSeriesAsync()
    {
        var rules = await File.ReadAllTextAsync(Path.Combine(MonitoringDirectory, RulesFile));
        using var dashboard = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(MonitoringDirectory, DashboardFile)));
        var texts = new List<(string Text, string File)> { (rules, RulesFile) };
        texts.AddRange(Strings(dashboard.RootElement).Select(t => (t, DashboardFile)));

        var found = new List<(string, string?, string?, string)>();
        foreach (var (text, file) in texts)
        {
            foreach (Match use in MetricUse().Matches(text))
            {
                var name = use.Groups["name"].Value;
                found.Add((name, null, null, file));
                foreach (Match matcher in EqualityMatcher().Matches(use.Groups["matchers"].Value))
                {
                    found.Add((name, matcher.Groups["label"].Value, matcher.Groups["value"].Value, file));
                }
            }
        }

        return found.Distinct().ToList();
    }

    private static IEnumerable<string> Strings(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.String => [element.GetString()!],
        JsonValueKind.Object => element.EnumerateObject().SelectMany(p => Strings(p.Value)),
        JsonValueKind.Array => element.EnumerateArray().SelectMany(Strings),
        _ => [],
    };

    private static List<string> AlertNames() =>
        AlertName().Matches(File.ReadAllText(Path.Combine(MonitoringDirectory, RulesFile))).Select(m => m.Groups[1].Value).ToList();

    [GeneratedRegex(@"\b(?<name>smtpi_[a-z0-9_]+)(?:\{(?<matchers>[^}]*)\})?")]
    private static partial Regex MetricUse();

    // Only `label="value"`: a regex matcher (=~, as the dashboard's $instance) names no fixed series.
    [GeneratedRegex(@"(?<label>[a-z_]+)=""(?<value>[^""$]*)""")]
    private static partial Regex EqualityMatcher();

    [GeneratedRegex(@"^\s*- alert: (\w+)\s*$", RegexOptions.Multiline)]
    private static partial Regex AlertName();

    [GeneratedRegex(@"expr: \|\n(?:[ ]{10,}.*\n)+")]
    private static partial Regex MultiLineExpression();

    [GeneratedRegex(@"expr: (?!BROKEN).*")]
    private static partial Regex SingleLineExpression();

    [GeneratedRegex(@"`smtp-interceptor ([a-z][a-z-]*)")]
    private static partial Regex CommandMention();
}
