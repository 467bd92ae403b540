using System.Globalization;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The real clients a customer's code would be: swaks (Perl), Python's smtplib, and a raw socket
/// client for the byte-exact cases. Each runs inside the namespace as the given user
/// (null = root) with a bounded time.
/// </summary>
public static class Clients
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(90);

    /// <summary>
    /// swaks with --no-data-fixup, so it sends our bytes untouched (its fix-up would rewrite "\n"
    /// sequences, tokens and header folding). It appends CRLF itself, so the file holds the
    /// dot-stuffed message followed by the bare final dot.
    /// </summary>
    public static Task<ProcessResult> SwaksAsync(
        NetworkNamespace ns, TestUser? user, TestDirectory dir, string server, string from, string to, byte[] message, TimeSpan? timeout = null,
        IEnumerable<string>? extraArguments = null)
    {
        var stuffed = TestMessage.DotStuff(message);
        var dataFile = dir.Write("swaks-data-" + Guid.NewGuid().ToString("N")[..8] + ".txt", [.. stuffed, (byte)'.']);
        return ns.RunAsUserAsync(
            user,
            "swaks",
            [
                "--server", server,
                "--from", from,
                "--to", to,
                "--helo", "client.test",
                "--data", "@" + dataFile,
                "--no-data-fixup",
                "--suppress-data",
                "--timeout", "60",
                .. extraArguments ?? [],
            ],
            timeout ?? DefaultTimeout);
    }

    /// <summary>Python smtplib sendmail with the message as bytes; with <paramref name="parallel"/> &gt; 0, that many concurrent connections.</summary>
    public static Task<ProcessResult> SmtplibAsync(
        NetworkNamespace ns, TestUser? user, TestDirectory dir, string server, string from, IEnumerable<string> to, byte[] message,
        int parallel = 0, string label = "", TimeSpan? timeout = null)
    {
        var messageFile = dir.Write("smtplib-" + Guid.NewGuid().ToString("N")[..8] + ".eml", message);
        List<string> arguments = ["-I", dir.PathOf("send_smtplib.py"), "--server", server, "--from", from, "--file", messageFile, "--timeout", "60"];
        foreach (var recipient in to)
        {
            arguments.Add("--to");
            arguments.Add(recipient);
        }

        if (parallel > 0)
        {
            arguments.AddRange(["--parallel", parallel.ToString(CultureInfo.InvariantCulture), "--label", label]);
        }

        return ns.RunAsUserAsync(user, Requirements.Python, arguments, timeout ?? DefaultTimeout);
    }

    /// <summary>Runs a raw dialog; the result carries every reply verbatim.</summary>
    public static async Task<DialogResult> DialogAsync(NetworkNamespace ns, TestUser? user, TestDirectory dir, SmtpDialog dialog, TimeSpan? timeout = null)
    {
        var dialogFile = dir.Write("dialog-" + Guid.NewGuid().ToString("N")[..8] + ".json", dialog.ToJson());
        var process = await ns.RunAsUserAsync(user, Requirements.Python, ["-I", dir.PathOf("smtp_dialog.py"), dialogFile], timeout ?? DefaultTimeout);
        return DialogResult.Parse(process);
    }

    /// <summary>Writes a message as the DATA payload a raw client sends: dot-stuffed and terminated by CRLF.CRLF.</summary>
    public static string WriteStuffedBody(TestDirectory dir, byte[] message) =>
        dir.Write("body-" + Guid.NewGuid().ToString("N")[..8] + ".txt", [.. TestMessage.DotStuff(message), .. ".\r\n"u8]);
}
