using System.CommandLine;
using System.Text.RegularExpressions;
using Interceptor.Daemon.Commands;
using Interceptor.Tests.Netfilter;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Daemon.Commands;

/// <summary>
/// packaging/smtp-interceptor.1 against the command line's declaration: every verb and option in both, and each verb's
/// entry naming exactly the options and words that verb declares. The prose stays hand-written.
/// </summary>
[TestFixture]
public sealed partial class ManPageTests
{
    private static readonly CommandLineDefinition Definition = CommandLineDefinition.Create(NullLoggerFactory.Instance, TextWriter.Null);

    private static string ManPage => File.ReadAllText(Path.Combine(NetfilterTestData.RepositoryRoot, "packaging", "smtp-interceptor.1"));

    private static IEnumerable<Command> Verbs => Definition.DaemonVerbs.Concat(Definition.AdminVerbs);

    /// <summary>The .SH section's lines, up to the next .SH.</summary>
    private static string Section(string name)
    {
        var start = ManPage.IndexOf($".SH {name}\n", StringComparison.Ordinal);
        Assert.That(start, Is.GreaterThanOrEqualTo(0), $"the man page has a {name} section");
        var end = ManPage.IndexOf("\n.SH ", start + 1, StringComparison.Ordinal);
        return ManPage[start..end];
    }

    /// <summary>Each ".TP" entry's header line in COMMANDS, by the verb it names.</summary>
    private static Dictionary<string, string> CommandEntries()
    {
        var lines = Section("COMMANDS").Split('\n');
        return lines.Zip(lines.Skip(1)).Where(p => p.First == ".TP").Select(p => p.Second)
            .ToDictionary(header => header.Split(' ')[1].Trim('"'));
    }

    private static SortedSet<string> OptionNames(string roff) => [.. OptionPattern().Matches(roff).Select(m => m.Value.Replace("\\-", "-", StringComparison.Ordinal))];

    [GeneratedRegex(@"(\\-){1,2}[a-z][a-z-]*")]
    private static partial Regex OptionPattern();

    [Test]
    public void Commands_lists_exactly_the_declared_verbs()
    {
        Assert.That(CommandEntries().Keys.Order(), Is.EqualTo(Verbs.Select(v => v.Name).Order()));
    }

    [Test]
    public void Each_verbs_entry_names_exactly_its_own_options_and_words()
    {
        var entries = CommandEntries();
        Assert.Multiple(() =>
        {
            foreach (var verb in Verbs)
            {
                var header = entries.GetValueOrDefault(verb.Name, "");
                var declared = CommandHelp.OwnOptions(Definition, verb).Select(o => o.Name).Order();
                Assert.That(OptionNames(header), Is.EqualTo(declared), $"{verb.Name}: {header}");
                foreach (var word in verb.Arguments)
                {
                    Assert.That(header, Does.Contain($"\\fI{word.Name.ToLowerInvariant()}"), $"{verb.Name} takes {word.Name}: {header}");
                }
            }
        });
    }

    [Test]
    public void Options_lists_every_option_that_more_than_one_verb_shares_with_its_aliases()
    {
        var shared = Definition.Root.Options.Where(o => !o.Hidden).Append(Definition.Json)
            .SelectMany(o => o.Aliases.Append(o.Name));

        Assert.That(OptionNames(Section("OPTIONS")), Is.EqualTo(new SortedSet<string>(shared)));
    }

    [Test]
    public void Every_option_the_man_page_names_is_declared()
    {
        var declared = Verbs.Append(Definition.Root).SelectMany(c => c.Options).Where(o => !o.Hidden)
            .SelectMany(o => o.Aliases.Append(o.Name)).ToHashSet();

        Assert.That(OptionNames(Section("SYNOPSIS") + Section("COMMANDS") + Section("OPTIONS")), Is.SubsetOf(declared));
    }
}
