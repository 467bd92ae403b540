using System.Text.Json.Nodes;

namespace Interceptor.IntegrationTests;

/// <summary>What the per-user policy tests share: configs by documented key, one-message dialogs, the alert file.</summary>
internal static class PolicyTestSupport
{
    public const string Mx = "127.0.0.2:25";
    public const string To = "rcpt@example.test";

    /// <summary>The harness's default config plus these documented keys (dotted, as the README writes them).</summary>
    public static DaemonConfig Config(params (string Key, JsonNode? Value)[] settings) =>
        new() { Settings = settings.ToDictionary(s => s.Key, s => s.Value) };

    /// <summary>
    /// One message from <paramref name="user"/> over a raw dialog (EHLO, MAIL, each RCPT, DATA, body, QUIT), so every
    /// reply is seen verbatim. A refused MAIL or DATA stops the dialog there (then QUIT).
    /// </summary>
    public static Task<DialogResult> SendAsync(
        Scenario s, TestUser? user, string marker, IReadOnlyList<string>? recipients = null, string server = Mx)
    {
        var from = (user?.Name ?? "root") + "@client.test";
        IReadOnlyList<string> to = recipients ?? [To];
        var body = Clients.WriteStuffedBody(s.Dir, TestMessage.Small(from, to[0], marker));
        return Clients.DialogAsync(s.Ns, user, s.Dir, SmtpDialog.Transaction(server, from, to, body, 20), TimeSpan.FromSeconds(30));
    }

    /// <summary>The final-dot reply was 250: the upstream accepted the message.</summary>
    public static void AssertDelivered(DialogResult dialog, string context)
    {
        Assert.That(dialog.Reply("BODY")?.Code, Is.EqualTo(250), "the message must be delivered\n" + dialog.Describe() + context);
    }

    /// <summary>The single line of the reply to <paramref name="label"/>, or a failure naming the dialog.</summary>
    public static string ReplyLine(DialogResult dialog, string label)
    {
        var reply = dialog.Reply(label);
        Assert.That(reply, Is.Not.Null, $"no reply to {label}\n{dialog.Describe()}");
        return string.Join("\n", reply!.Lines);
    }

    /// <summary>Messages the fake MX accepted whose trace header names <paramref name="user"/>.</summary>
    public static IReadOnlyList<RecordedMessage> RelayedFor(Scenario s, TestUser user) =>
        [.. s.RequireMx.Messages().Where(m => m.FirstLine.StartsWith($"{TraceHeader.Name}: uid={user.Uid} user={user.Name};", StringComparison.Ordinal))];

    /// <summary>Alerts.Command that writes the SMTPI_* environment it was given to <paramref name="path"/> (atomically).</summary>
    public static string AlertCommand(string path) =>
        $"env | grep '^SMTPI_' > '{path}.tmp' && mv '{path}.tmp' '{path}'";

    /// <summary>Waits for the alert command's file and reads it as NAME=value lines.</summary>
    public static async Task<IReadOnlyDictionary<string, string>?> WaitForAlertAsync(string path, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!File.Exists(path) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        if (!File.Exists(path))
        {
            return null;
        }

        return (await File.ReadAllLinesAsync(path))
            .Select(l => l.Split('=', 2))
            .Where(p => p.Length == 2)
            .ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);
    }

    /// <summary>Waits until the kernel's suspended set holds (or no longer holds) <paramref name="uid"/>.</summary>
    public static async Task<IReadOnlyList<uint>> WaitForSuspendedAsync(NetworkNamespace ns, uint uid, bool suspended, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var uids = await NftTable.SuspendedUidsAsync(ns);
            if (uids.Contains(uid) == suspended || DateTime.UtcNow >= deadline)
            {
                return uids;
            }

            await Task.Delay(100);
        }
    }

    /// <summary>The daemon's log lines that name <paramref name="user"/> (every session, policy and transaction line does).</summary>
    public static int LinesAbout(DaemonProcess daemon, TestUser user) =>
        daemon.LogLines().Count(l => l.Raw.Contains(user.Name, StringComparison.Ordinal));

    /// <summary>State.Directory as written into the daemon's config file.</summary>
    public static string StateDirectory(DaemonProcess daemon) =>
        JsonNode.Parse(File.ReadAllText(daemon.ConfigPath))!["State"]!["Directory"]!.GetValue<string>();

    /// <summary>Runs an admin verb of the real binary inside the namespace as root, e.g. ["unblock", "smtpi-alice"].</summary>
    /// The test run's own SMTPI_* variables (SMTPI_KEEP_TEST_USERS) are removed: the command would read them as configuration keys.
    public static Task<ProcessResult> CliAsync(NetworkNamespace ns, DaemonProcess daemon, params string[] arguments) =>
        ns.RunAsync("env", [.. SmtpiVariablesUnset(), DaemonProcess.DotnetHost, DaemonProcess.AssemblyPath, .. arguments, "--config", daemon.ConfigPath], TimeSpan.FromSeconds(60));

    private static IEnumerable<string> SmtpiVariablesUnset() =>
        Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Where(k => k.StartsWith("SMTPI_", StringComparison.Ordinal))
            .SelectMany(k => new[] { "-u", k });
}
