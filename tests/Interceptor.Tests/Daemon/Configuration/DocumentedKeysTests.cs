using System.Text;
using System.Text.RegularExpressions;
using Interceptor.Core.Options;
using Interceptor.Daemon.Configuration;
using Interceptor.Tests.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Configuration;

/// <summary>
/// The README's configuration table and the packaged configuration list exactly the keys the option records declare
/// (<see cref="OptionKeys"/>), each with its real default.
/// </summary>
public partial class DocumentedKeysTests
{
    /// <summary>Defaults the documents describe in words: the host name is resolved by the loader, not a constant.</summary>
    private static readonly Dictionary<string, (string Real, string[] Written)> DescribedDefaults = new()
    {
        ["Relay.HeloName"] = ("\"\"", ["the host name", "\"<this host's name>\""]),
        ["Listen.MaxConnections"] = ("0", ["0", "0 (derived)"]),

        // Five regular expressions do not fit a table cell; the Relay pool section lists them (tested below).
        ["Burn.Patterns"] = (OptionKeys.All.Single(k => k.Dotted == "Burn.Patterns").Default!,
            ["the provider patterns (see Relay pool)", "\"<the provider patterns: see README, Relay pool>\""]),
    };

    private static IEnumerable<OptionKey> ValueKeys => OptionKeys.All.Where(k => !k.Path.Contains('*', StringComparison.Ordinal));

    [Test]
    public void The_readme_table_lists_every_key_with_its_default()
    {
        var documented = ReadmeKeys();
        var known = OptionKeys.All.Select(k => k.Dotted).ToHashSet();

        Assert.Multiple(() =>
        {
            Assert.That(documented.Keys.Where(k => !known.Contains(k)), Is.Empty, "in the README but no such key");
            Assert.That(known.Where(k => !documented.ContainsKey(k)), Is.Empty, "a key the README's table does not list");
            foreach (var key in ValueKeys.Where(k => documented.ContainsKey(k.Dotted)))
            {
                AssertDefault(key, documented[key.Dotted], "README");
            }
        });
    }

    [Test]
    public void The_packaged_configuration_shows_every_key_and_each_commented_out_one_at_its_default()
    {
        var shown = PackagedKeys();
        var unknown = shown.Where(s => Match(s.Path) is null).Select(s => s.Path).ToList();
        var matched = shown.Select(s => Match(s.Path)).ToList();

        // A name an admin chooses (Limits.Users.<name>) needs one example, not every field.
        var missing = OptionKeys.All
            .Where(k => !matched.Any(m => m is not null && (m == k || (k.Path.Contains('*', StringComparison.Ordinal) && Dictionary(m) == Dictionary(k)))))
            .Select(k => k.Dotted).ToList();

        Assert.Multiple(() =>
        {
            Assert.That(unknown, Is.Empty, "in smtp-interceptor.json but no such key");
            Assert.That(missing, Is.Empty, "a key smtp-interceptor.json does not show");

            // The file's header promises that a commented-out key shows its default; the set ones (ExemptUsers) are choices.
            foreach (var (path, value, commented) in shown.Where(s => s.Commented))
            {
                if (Match(path) is { Default: not null } key)
                {
                    AssertDefault(key, value, "smtp-interceptor.json");
                }
            }
        });
    }

    [Test]
    public void State_RetentionDays_is_documented_in_both()
    {
        Assert.That(ReadmeKeys(), Does.ContainKey("State.RetentionDays"));
        Assert.That(PackagedKeys().Select(k => k.Path), Does.Contain("State.RetentionDays"));
    }

    [Test]
    public void The_relay_pool_section_lists_every_default_burn_pattern()
    {
        var readme = File.ReadAllText(Path.Combine(NetfilterTestData.RepositoryRoot, "README.md"));
        var section = readme[readme.IndexOf("\n## Relay pool", StringComparison.Ordinal)..];

        foreach (var pattern in BurnOptions.DefaultPatterns)
        {
            Assert.That(section, Does.Contain($"| `{pattern.Label}` | `{pattern.Pattern.Replace("|", "\\|", StringComparison.Ordinal)}` |"), pattern.Label);
        }
    }

    private static void AssertDefault(OptionKey key, string written, string where)
    {
        if (DescribedDefaults.TryGetValue(key.Dotted, out var described))
        {
            Assert.That(key.Default, Is.EqualTo(described.Real), $"{key.Dotted}: real default");
            Assert.That(described.Written, Does.Contain(written), $"{where}: {key.Dotted}");
            return;
        }

        Assert.That(Unquoted(written), Is.EqualTo(Unquoted(key.Default!)), $"{where}: default of {key.Dotted}");
    }

    private static string Unquoted(string text) =>
        text.Length >= 2 && text[0] == '"' && text[^1] == '"' && !text.Contains(", ", StringComparison.Ordinal) ? text[1..^1] : text;

    private static string Dictionary(OptionKey key) =>
        key.Path.Contains('*', StringComparison.Ordinal) ? key.Path[..key.Path.IndexOf('*', StringComparison.Ordinal)] : key.Path;

    private static OptionKey? Match(string dotted)
    {
        var parts = dotted.Split('.');
        return OptionKeys.All.SingleOrDefault(k =>
        {
            var pattern = k.Path.Split(':');
            return pattern.Length == parts.Length && pattern.Zip(parts).All(p => p.First == "*" || p.First == p.Second);
        });
    }

    /// <summary>
    /// The README's table: "`Relay.ReuseIdleSeconds` / `ReuseMaxSeconds`" with "2 / 300" names two keys of one section;
    /// "`Limits.Users.&lt;name&gt;.*`" stands for every field under it.
    /// </summary>
    private static Dictionary<string, string> ReadmeKeys()
    {
        var readme = File.ReadAllText(Path.Combine(NetfilterTestData.RepositoryRoot, "README.md"));
        var section = readme[readme.IndexOf("\n## Configuration", StringComparison.Ordinal)..];
        section = section[..section.IndexOf("\n## ", 1, StringComparison.Ordinal)];
        var keys = new Dictionary<string, string>();
        foreach (var line in section.Split('\n').Where(l => l.StartsWith("| `", StringComparison.Ordinal)))
        {
            var cells = line.Split(" | ");
            var names = BackQuoted().Matches(cells[0]).Select(m => m.Groups[1].Value).ToList();
            var defaults = names.Count > 1 ? cells[1].Split(" / ") : [cells[1]];
            Assert.That(defaults, Has.Length.EqualTo(names.Count), $"README row {cells[0]}: one default per key");
            var parent = names[0][..names[0].LastIndexOf('.')];
            for (var i = 0; i < names.Count; i++)
            {
                var name = names[i].Contains('.', StringComparison.Ordinal) ? names[i] : $"{parent}.{names[i]}";
                if (name.EndsWith(".*", StringComparison.Ordinal))
                {
                    foreach (var field in OptionKeys.All.Where(k => k.Dotted.StartsWith(name[..^1], StringComparison.Ordinal)))
                    {
                        keys[field.Dotted] = defaults[i];
                    }
                }
                else
                {
                    keys[name] = defaults[i] == "\"\"" ? "" : defaults[i];
                }
            }
        }

        return keys;
    }

    /// <summary>
    /// Every "Key": value in smtp-interceptor.json, set or commented out ("// "Port": 24,"), with its dotted path. A line
    /// is uncommented once when what follows the "//" is JSON (a quote or a brace); prose comments are skipped.
    /// </summary>
    private static List<(string Path, string Value, bool Commented)> PackagedKeys()
    {
        var tokens = new List<(string Text, bool Commented)>();
        foreach (var raw in File.ReadAllLines(Path.Combine(NetfilterTestData.RepositoryRoot, "packaging", "smtp-interceptor.json")))
        {
            var line = raw.Trim();
            var commented = line.StartsWith("//", StringComparison.Ordinal);
            if (commented)
            {
                line = line[2..].TrimStart();
                if (line.Length == 0 || line[0] is not ('"' or '{' or '}'))
                {
                    continue;
                }
            }

            tokens.AddRange(Token().Matches(WithoutComment(line)).Select(m => (m.Value, commented)));
        }

        var found = new List<(string, string, bool)>();
        var path = new Stack<string?>();
        for (var i = 0; i < tokens.Count; i++)
        {
            var (text, commented) = tokens[i];
            if (text == "{")
            {
                path.Push(null);
            }
            else if (text == "}")
            {
                path.Pop();
            }
            else if (text[0] == '"' && i + 2 < tokens.Count && tokens[i + 1].Text == ":")
            {
                var key = string.Join('.', path.Reverse().Where(p => p is not null).Append(text[1..^1]));
                i += 2;
                if (tokens[i].Text == "{")
                {
                    path.Push(text[1..^1]);
                    continue;
                }

                var value = new StringBuilder(tokens[i].Text);
                if (tokens[i].Text == "[")
                {
                    var items = new List<string>();
                    while (tokens[++i].Text != "]")
                    {
                        if (tokens[i].Text != ",")
                        {
                            items.Add(tokens[i].Text);
                        }
                    }

                    value.Clear().Append('[').AppendJoin(", ", items).Append(']');
                }

                found.Add((key, value.ToString(), commented));
            }
        }

        return found;
    }

    /// <summary>The line up to a "//" comment that is not inside a string.</summary>
    private static string WithoutComment(string line)
    {
        var quoted = false;
        for (var i = 0; i < line.Length - 1; i++)
        {
            if (line[i] == '"')
            {
                quoted = !quoted;
            }
            else if (!quoted && line[i] == '/' && line[i + 1] == '/')
            {
                return line[..i];
            }
        }

        return line;
    }

    [GeneratedRegex("`([^`]+)`")]
    private static partial Regex BackQuoted();

    [GeneratedRegex("""
        "(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+
        """)]
    private static partial Regex Token();
}
