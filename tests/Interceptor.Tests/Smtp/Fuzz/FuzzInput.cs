using System.Text;

namespace Interceptor.Tests.Smtp.Fuzz;

/// <summary>What the client does once it has sent everything.</summary>
internal enum FuzzEnding
{
    /// <summary>Close the socket (FIN).</summary>
    Close,

    /// <summary>Shut down the sending side and keep reading until the relay hangs up.</summary>
    HalfClose,

    /// <summary>Go silent with the connection open: only the relay's timeouts can end the session.</summary>
    KeepOpen,

    /// <summary>Abortive close (RST).</summary>
    Reset,
}

/// <summary>One write of the client; with <see cref="AwaitReply"/> it waits for the relay's next reply line before going on.</summary>
internal sealed record FuzzSegment(byte[] Bytes, bool AwaitReply);

/// <summary>One generated client: everything is a function of <see cref="Seed"/>, so a failure can be replayed.</summary>
internal sealed record FuzzCase(int Index, int Seed, string Kind, bool WaitForGreeting, IReadOnlyList<FuzzSegment> Segments, FuzzEnding Ending)
{
    public byte[] AllBytes => [.. Segments.SelectMany(s => s.Bytes)];

    /// <summary>The input as C#-escaped text, cut to <paramref name="max"/> characters, for failure messages.</summary>
    public string Preview(int max = 1500)
    {
        var text = new StringBuilder();
        foreach (var b in AllBytes)
        {
            text.Append(b switch
            {
                (byte)'\r' => "\\r",
                (byte)'\n' => "\\n\n",
                (byte)'\\' => "\\\\",
                >= 0x20 and < 0x7f => ((char)b).ToString(),
                _ => $"\\x{b:x2}",
            });
            if (text.Length > max)
            {
                text.Append(" [...]");
                break;
            }
        }

        return text.ToString();
    }

    public override string ToString() =>
        $"case {Index} (seed {Seed}): {Kind}, {(WaitForGreeting ? "waits for the greeting" : "talks first")}, {Segments.Count} writes, {AllBytes.Length} bytes, then {Ending}";
}

/// <summary>
/// Generates hostile clients: random bytes, and SMTP-shaped conversations (real commands and messages) with
/// the smuggling sequences, forbidden bytes, odd line endings, long lines, pipelining and byte flips mixed in.
/// </summary>
internal static class FuzzInput
{
    private static readonly string[] LineEndings = ["\r\n", "\r\n", "\r\n", "\r\n", "\r\n", "\r\n", "\r\n", "\r\n", "\r\n", "\r\n", "\r\n", "\r\n", "\n", "\r", "", "\r\r\n", "\n\r"];

    private static readonly string[] Addresses =
    [
        "alice@customer.test", "bob@example.net", "", "postmaster", "a@b", "\"quoted local\"@example.net", "@relay.test,@b.test:routed@example.net",
        "victim%elsewhere.test@example.net", "elsewhere!victim@example.net", "ünïcødé@例え.test", "no-at-sign", "x@", "@x",
        "very.long." + new string('l', 70) + "@example.net", "d@" + new string('d', 260), "a@b>c", "<nested@x>", "spaces in@x",
    ];

    private static readonly string[] CleanAddresses = ["alice@customer.test", "bob@example.net", "carol@example.org", "\"quoted local\"@example.net", "@relay.test:routed@example.net"];

    private static readonly string[] CleanMailParameters = ["", "", "", " SIZE=100", " BODY=8BITMIME", " BODY=7BIT"];

    // Only bare LFs (normalised and relayed), never a bare CR or a NUL (refused): these messages do reach the upstream.
    private static readonly string[] CleanBodyLines =
    [
        "Subject: fuzz", "From: <alice@customer.test>", "", "plain body text", ".", "..", ".leading dot", "...", "MAIL FROM:<smuggler@evil.test>",
        "RCPT TO:<victim@example.net>", "DATA", "QUIT", "\n.\n", "\n.\r\n", "\r\n.\n", "\n..\n", "bare\nlf", "ümlaut",
    ];

    private static readonly string[] CleanVerbs = ["NOOP", "RSET", "HELP", "VRFY postmaster"];

    private static readonly string[] MailParameters =
        ["", "", "", " SIZE=100", " SIZE=999999999", " SIZE=notanumber", " SIZE", " BODY=8BITMIME", " BODY=7BIT", " BODY=BINARYMIME", " SMTPUTF8", " SMTPUTF8=x", " RET=FULL", " =", " X-BAD;PARAM=1"];

    private static readonly string[] BodyLines =
    [
        "Subject: fuzz", "From: <alice@customer.test>", "", "plain body text", ".", "..", ".leading dot", "...", " .", "MAIL FROM:<smuggler@evil.test>",
        "RCPT TO:<victim@example.net>", "DATA", "QUIT", "\n.\n", "\r.\r", "\r.\n", "\n.\r", "\n.\r\n", "\r\n.\n", "\r.\r\n", "\r\n.\r", "\0", "nul\0inside",
        "bare\rcr", "bare\nlf", "\r\n.\r\n", "tab\there", "ümlaut", "\x7f\x01\x1b[31m",
    ];

    private static readonly string[] Verbs =
        ["NOOP", "RSET", "QUIT", "VRFY postmaster", "HELP", "BDAT 10 LAST", "BDAT 0", "STARTTLS", "AUTH PLAIN AGJvYgBwdw==", "EXPN list", "TURN", "XJUNK", "", " ", "ehlo", "mail from:<x@y>", "DATA extra"];

    public static FuzzCase Generate(int index, int seed)
    {
        var random = new Random(seed);
        var roll = random.Next(100);
        var ending = (FuzzEnding)Pick(random, [0, 0, 0, 0, 1, 1, 1, 2, 2, 3]);
        if (roll < 20)
        {
            return new FuzzCase(index, seed, "random bytes", random.Next(4) != 0, RandomBytes(random), ending);
        }

        var clean = roll < 55;
        var segments = Shaped(random, clean);
        var kind = clean ? "smtp-clean" : "smtp-hostile";
        if (!clean && random.Next(6) == 0)
        {
            Mutate(random, segments);
            kind += ", mutated";
        }

        return new FuzzCase(index, seed, kind, clean || random.Next(12) != 0, segments, ending);
    }

    private static List<FuzzSegment> RandomBytes(Random random)
    {
        var segments = new List<FuzzSegment>();
        for (var i = random.Next(1, 6); i > 0; i--)
        {
            var bytes = new byte[random.Next(0, 3000)];
            random.NextBytes(bytes);
            // Sprinkle line ends so the line reader does more than discard one long line.
            for (var j = 0; j < bytes.Length / 40; j++)
            {
                bytes[random.Next(bytes.Length)] = (byte)(random.Next(3) == 0 ? '\r' : '\n');
            }

            segments.Add(new FuzzSegment(bytes, random.Next(2) == 0));
        }

        return segments;
    }

    /// <summary>
    /// A conversation: greeting, a few transactions, noise. Clean ones use valid envelopes, CRLF commands and bodies
    /// without forbidden bytes, so messages do get relayed; hostile ones use everything.
    /// </summary>
    private static List<FuzzSegment> Shaped(Random random, bool clean)
    {
        var segments = new List<FuzzSegment>();
        var addresses = clean ? CleanAddresses : Addresses;
        void Command(string text, bool? waitForReply = null) =>
            segments.Add(new FuzzSegment(Encoding.UTF8.GetBytes(text + (clean ? "\r\n" : Ending(random))), waitForReply ?? random.Next(5) != 0));

        if (clean || random.Next(6) != 0)
        {
            Command((random.Next(4) == 0 ? "HELO " : "EHLO ") + Pick<string>(random, clean ? ["web1.customer.test"] : ["web1.customer.test", "", "x", "[127.0.0.1]", "ünï"]));
        }

        for (var transaction = random.Next(0, 4); transaction > 0; transaction--)
        {
            Noise(random, clean, Command);
            Command("MAIL FROM:<" + Pick(random, addresses) + ">" + Pick(random, clean ? CleanMailParameters : MailParameters));
            for (var rcpt = random.Next(clean ? 1 : 0, 8); rcpt > 0; rcpt--)
            {
                Command(!clean && random.Next(10) == 0 ? "RCPT TO:" + Pick(random, addresses) : "RCPT TO:<" + Pick(random, addresses) + ">" + (!clean && random.Next(10) == 0 ? " NOTIFY=NEVER" : ""));
            }

            Noise(random, clean, Command);
            if (random.Next(clean ? 20 : 6) == 0)
            {
                // DATA with the message in the same write: pipelining where it is not allowed.
                segments.Add(new FuzzSegment([.. Encoding.UTF8.GetBytes("DATA\r\n"), .. Body(random, clean)], true));
                continue;
            }

            Command("DATA", clean || random.Next(10) != 0);
            var body = Body(random, clean);
            var chunks = random.Next(1, 5);
            for (var start = 0; start < body.Length;)
            {
                var length = chunks == 1 ? body.Length - start : random.Next(1, Math.Max(2, body.Length - start + 1));
                start += length;
                chunks--;
                segments.Add(new FuzzSegment(body[(start - length)..start], start >= body.Length));
            }
        }

        Noise(random, clean, Command);
        if (random.Next(3) == 0)
        {
            Command("QUIT");
        }

        return segments;
    }

    /// <summary>Commands that are not part of a transaction: junk, unsupported verbs, long and broken lines.</summary>
    private static void Noise(Random random, bool clean, Action<string, bool?> command)
    {
        for (var i = random.Next(0, 3) == 0 ? random.Next(1, clean ? 4 : 25) : 0; i > 0; i--)
        {
            var line = clean ? Pick(random, CleanVerbs) : random.Next(12) switch
            {
                0 => new string('A', random.Next(2000, 5000)),
                1 => "NOOP " + new string('n', random.Next(2030, 2060)),
                2 => Pick(random, Verbs) + "\0" + Pick(random, Verbs),
                3 => Pick(random, Verbs) + "\r" + Pick(random, Verbs),
                4 => Pick(random, Verbs) + "\n" + Pick(random, Verbs),
                _ => Pick(random, Verbs),
            };
            command(line, null);
        }
    }

    private static byte[] Body(Random random, bool clean)
    {
        var text = new StringBuilder();
        var lines = random.Next(10) == 0 ? random.Next(1000, 12000) : random.Next(0, 30);
        for (var i = 0; i < lines; i++)
        {
            text.Append(!clean && random.Next(300) == 0 ? new string('w', random.Next(1000, 70000)) : Pick(random, clean ? CleanBodyLines : BodyLines));
            text.Append(clean ? (random.Next(8) == 0 ? "\n" : "\r\n") : Ending(random));
        }

        // Mostly a proper end; sometimes a broken one, so the relay has to wait (and time out).
        text.Append(random.Next(clean ? 30 : 10) switch
        {
            0 => "\n.\n",
            1 => ".",
            2 => "",
            _ => random.Next(2) == 0 ? "\r\n.\r\n" : ".\r\n",
        });
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    /// <summary>A few random byte flips, insertions and deletions.</summary>
    private static void Mutate(Random random, List<FuzzSegment> segments)
    {
        for (var i = random.Next(1, 6); i > 0 && segments.Count > 0; i--)
        {
            var index = random.Next(segments.Count);
            var bytes = segments[index].Bytes.ToList();
            var at = random.Next(bytes.Count + 1);
            switch (random.Next(3))
            {
                case 0 when at < bytes.Count:
                    bytes[at] = (byte)random.Next(256);
                    break;
                case 1 when at < bytes.Count:
                    bytes.RemoveAt(at);
                    break;
                default:
                    bytes.Insert(at, (byte)Pick(random, [0, '\r', '\n', '.', ' ', 0xff, random.Next(256)]));
                    break;
            }

            segments[index] = segments[index] with { Bytes = [.. bytes] };
        }
    }

    private static string Ending(Random random) => LineEndings[random.Next(LineEndings.Length)];

    private static T Pick<T>(Random random, T[] items) => items[random.Next(items.Length)];
}
