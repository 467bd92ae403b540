using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Interceptor.IntegrationTests;

/// <summary>The parsed `X-Interceptor-Origin: uid=1001 user=alice; host=web1; id=EVENT` line.</summary>
public sealed partial record TraceHeader(uint Uid, string User, string Host, string Id)
{
    public const string Name = "X-Interceptor-Origin";

    public static TraceHeader? TryParse(string line)
    {
        var match = Pattern().Match(line);
        return match.Success
            ? new TraceHeader(uint.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), match.Groups[2].Value, match.Groups[3].Value, match.Groups[4].Value)
            : null;
    }

    /// <summary>
    /// Checks that <paramref name="relayed"/> is exactly one trace header line for <paramref name="user"/>
    /// followed by <paramref name="original"/>, byte for byte, and returns the header.
    /// </summary>
    public static TraceHeader AssertPrepended(RecordedMessage relayed, TestUser user, byte[] original, string context)
    {
        var header = TryParse(relayed.FirstLine);
        Assert.That(header, Is.Not.Null, $"first line is not a trace header: '{relayed.FirstLine}'{context}");
        Assert.Multiple(() =>
        {
            Assert.That(header!.Uid, Is.EqualTo(user.Uid), "trace header uid" + context);
            Assert.That(header.User, Is.EqualTo(user.Name), "trace header user" + context);
            Assert.That(header.Host, Is.EqualTo(DaemonConfig.TestHeloName), "trace header host (Relay.HeloName)" + context);
        });

        var headerLength = Encoding.UTF8.GetByteCount(relayed.FirstLine) + 2;
        TestMessage.AssertSameBytes(original, relayed.Bytes[headerLength..], " (after the trace header)" + context);
        return header!;
    }

    // uid and user are mandatory; host and id are whatever the daemon puts there, up to ';' / end of line.
    [GeneratedRegex(@"^X-Interceptor-Origin: uid=(\d+) user=([^;\s]+); host=([^;\s]+); id=(\S+)$")]
    private static partial Regex Pattern();
}
