using System.Net;
using System.Text.RegularExpressions;

namespace Interceptor.Core.Options;

/// <summary>Checks a bound configuration; every problem names its key, the way an admin writes it.</summary>
public static partial class OptionsValidator
{
    public static IReadOnlyList<string> Validate(InterceptorOptions options)
    {
        var errors = new List<string>();
        void Check(bool ok, string key, string problem)
        {
            if (!ok)
            {
                errors.Add($"{key}: {problem}");
            }
        }

        Check(options.Listen.Port is > 0 and <= 65535, "Listen.Port", $"{options.Listen.Port} is not a TCP port (1-65535)");
        Check(options.Listen.MaxConnections is >= 0 and <= 1_000_000, "Listen.MaxConnections", $"{options.Listen.MaxConnections} must be 0 (derived from the file descriptor limit) or 1-1000000");
        Check(options.Interception.Ports.Count > 0, "Interception.Ports", "at least one port must be intercepted (usually 25)");
        for (var i = 0; i < options.Interception.Ports.Count; i++)
        {
            var port = options.Interception.Ports[i];
            Check(port is > 0 and <= 65535, $"Interception.Ports[{i}]", $"{port} is not a TCP port (1-65535)");
            Check(port != options.Listen.Port, $"Interception.Ports[{i}]", $"{port} is the daemon's own Listen.Port; intercepting it would loop");
        }

        Check(options.Interception.Ports.Distinct().Count() == options.Interception.Ports.Count, "Interception.Ports", "lists a port twice");
        for (var i = 0; i < options.Interception.ExemptUsers.Count; i++)
        {
            Check(!string.IsNullOrWhiteSpace(options.Interception.ExemptUsers[i]), $"Interception.ExemptUsers[{i}]", "empty user name");
        }

        Check(Within(options.Interception.VerifyInterval, Seconds(1), Seconds(3600)), "Interception.VerifyIntervalSeconds", "must be 1-3600");
        Check(Within(options.Interception.RefusalSummaryInterval, Seconds(1), Seconds(3600)), "Interception.RefusalSummarySeconds", "must be 1-3600");
        Check(options.Interception.StrayLogGroup is >= 0 and <= 65535, "Interception.StrayLogGroup", $"{options.Interception.StrayLogGroup} is not an NFLOG group (1-65535, or 0 for none)");
        Check(options.Relay.HeloName.Length == 0 || HostName().IsMatch(options.Relay.HeloName), "Relay.HeloName", $"\"{options.Relay.HeloName}\" is not a host name");
        Check(Within(options.Relay.ConnectTimeout, Seconds(1), Seconds(600)), "Relay.ConnectTimeoutSeconds", "must be 1-600");
        Check(Within(options.Relay.ReplyTimeout, Seconds(1), Seconds(3600)), "Relay.ReplyTimeoutSeconds", "must be 1-3600");
        Check(Within(options.Relay.DataReplyTimeout, Seconds(1), Seconds(3600)), "Relay.DataReplyTimeoutSeconds", "must be 1-3600");
        Check(Within(options.Relay.ReuseIdleTime, Seconds(1), Seconds(300)), "Relay.ReuseIdleSeconds", "must be 1-300");
        Check(Within(options.Relay.ReuseMaxAge, Seconds(1), Seconds(86400)), "Relay.ReuseMaxSeconds", "must be 1-86400");
        Check(options.Relay.ReuseMaxMessages is > 0 and <= 100000, "Relay.ReuseMaxMessages", "must be 1-100000");
        Check(options.Relay.IdleClientRelease == TimeSpan.Zero || Within(options.Relay.IdleClientRelease, Seconds(1), Seconds(3600)),
            "Relay.IdleClientReleaseSeconds", "must be 0 (off) or 1-3600");
        Check(options.Relay.ReuseMaxIdlePerDestination is > 0 and <= 10000, "Relay.ReuseMaxIdlePerDestination", "must be 1-10000");
        Check(options.Relay.ReuseMaxIdleTotal >= options.Relay.ReuseMaxIdlePerDestination && options.Relay.ReuseMaxIdleTotal <= 100000,
            "Relay.ReuseMaxIdleTotal", "must be at least Relay.ReuseMaxIdlePerDestination and at most 100000");
        for (var i = 0; i < options.Relay.PermittedLocalDestinations.Count; i++)
        {
            var text = options.Relay.PermittedLocalDestinations[i];
            Check(IPEndPoint.TryParse(text, out var endpoint) && endpoint.Port != 0, $"Relay.PermittedLocalDestinations[{i}]", $"\"{text}\" is not address:port (IPv6 as [addr]:port)");
        }

        Check(options.Fairness.PaceAbovePressurePercent is >= 0 and <= 100, "Fairness.PaceAbovePressurePercent", "must be 0 (never paced) or 1-100");
        Check(options.Fairness.PacedMinimumPercent is >= 1 and <= 100, "Fairness.PacedMinimumPercent", "must be 1-100");
        CheckRelayPool(options, Check);
        CheckScan(options.Scan, Check);
        CheckHold(options, Check);
        CheckMailIdentity(options, Check);
        CheckLimits(options.Limits.Default, "Limits.Default", required: true, Check);
        foreach (var (user, limits) in options.Limits.Users)
        {
            CheckLimits(limits, $"Limits.Users.{user}", required: false, Check);
        }

        for (var i = 0; i < options.Interception.BlockedPorts.Count; i++)
        {
            var port = options.Interception.BlockedPorts[i];
            Check(port is > 0 and <= 65535, $"Interception.BlockedPorts[{i}]", $"{port} is not a TCP port (1-65535)");
            Check(!options.Interception.Ports.Contains(port) && port != options.Listen.Port, $"Interception.BlockedPorts[{i}]", $"{port} is intercepted or the listen port; a port is either intercepted or blocked");
        }

        Check(Path.IsPathRooted(options.State.Directory), "State.Directory", "must be an absolute path");
        Check(Within(options.State.Retention, TimeSpan.FromDays(2), TimeSpan.FromDays(3650)), "State.RetentionDays", "must be 2-3650 (quotas need the last day)");
        Check(options.State.MaxSize.Bytes >= 1L << 20, "State.MaxBytes", "must be at least 1048576 (1 MiB)");
        Check(options.State.MinFree.Bytes >= 0, "State.MinFreeBytes", "must be 0 or more");
        Check(Path.IsPathRooted(options.Control.SocketPath), "Control.SocketPath", "must be an absolute path");
        var suspension = options.Suspension;
        Check(suspension.RefusalLimit >= 0, "Suspension.RefusalLimit", "must be 0 (off) or more");
        Check(Within(suspension.RefusalWindow, TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(10080)), "Suspension.RefusalWindowMinutes", "must be 1-10080");
        Check(suspension.UnsentLimit >= 0, "Suspension.UnsentLimit", "must be 0 (off) or more");
        Check(suspension.FailureRatioPercent is >= 0 and <= 100, "Suspension.FailureRatioPercent", "must be 0 (off) to 100");
        Check(suspension.FailureMinimum > 0, "Suspension.FailureMinimum", "must be at least 1");
        Check(Within(suspension.FailureWindow, TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(10080)), "Suspension.FailureWindowMinutes", "must be 1-10080");
        Check(suspension.LocalFailureLimit >= 0, "Suspension.LocalFailureLimit", "must be 0 (off) or more");
        Check(Within(suspension.LocalFailureWindow, TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(1440)), "Suspension.LocalFailureWindowMinutes", "must be 1-1440");
        Check(Within(suspension.LocalFailureCooldown, Seconds(1), Seconds(3600)), "Suspension.LocalFailureCooldownSeconds", "must be 1-3600");
        Check(suspension.LocalFailureCooldown <= suspension.LocalFailureWindow, "Suspension.LocalFailureCooldownSeconds", "must be no longer than Suspension.LocalFailureWindowMinutes (the cool-down doubles up to the window)");
        Check(Within(options.Alerts.Timeout, Seconds(1), Seconds(600)), "Alerts.TimeoutSeconds", "must be 1-600");
        foreach (var (user, routes) in options.Routes.Users)
        {
            for (var i = 0; i < routes.Count; i++)
            {
                Check(IPEndPoint.TryParse(routes[i], out var route) && route.Port != 0, $"Routes.Users.{user}[{i}]", $"\"{routes[i]}\" is not address:port (IPv6 as [addr]:port)");
            }
        }

        Check(options.Metrics.Listen.Length == 0 || (IPEndPoint.TryParse(options.Metrics.Listen, out var metrics) && IPAddress.IsLoopback(metrics.Address) && metrics.Port != 0),
            "Metrics.Listen", $"\"{options.Metrics.Listen}\" must be empty (off) or a loopback address:port such as 127.0.0.1:9325");
        Check(options.Metrics.BearerTokenFile.Length == 0 || Path.IsPathFullyQualified(options.Metrics.BearerTokenFile),
            "Metrics.BearerTokenFile", $"\"{options.Metrics.BearerTokenFile}\" must be an absolute path");
        Check(options.Metrics.BearerTokenFile.Length == 0 || options.Metrics.Listen.Length > 0,
            "Metrics.BearerTokenFile", "is set but Metrics.Listen is empty: there is no endpoint for the token to guard");

        Check(Enum.IsDefined(options.Attribution.UnknownUids), "Attribution.UnknownUids", "must be Refuse or Relay");
        CheckClientTls(options.ClientTls, Check);

        var smtp = options.Smtp;
        Check(Within(smtp.IdleTimeout, Seconds(1), Seconds(3600)), "Smtp.IdleTimeoutSeconds", "must be 1-3600");
        Check(smtp.SessionTimeout >= smtp.IdleTimeout, "Smtp.SessionTimeoutSeconds", "must be at least Smtp.IdleTimeoutSeconds");
        // The session's deadline is a timer, which waits at most 2^32 − 2 ms; above it every session failed at its start.
        Check(smtp.SessionTimeout <= Seconds(4294967), "Smtp.SessionTimeoutSeconds", "must be at most 4294967 (49.7 days, the longest a timer waits)");
        Check(smtp.MaxCommandLine.Bytes is >= 512 and <= 8192, "Smtp.MaxCommandLineBytes", "must be 512-8192 (RFC 5321 requires at least 512)");
        Check(smtp.MaxDataLine.Bytes is >= 1000 and <= 1048576, "Smtp.MaxDataLineBytes", "must be 1000-1048576 (RFC 5321 requires at least 1000)");
        Check(Within(smtp.CommandLineTimeout, Seconds(1), Seconds(3600)), "Smtp.CommandLineTimeoutSeconds", "must be 1-3600");
        Check(smtp.MinDataRate.BytesPerSecond >= 0, "Smtp.MinDataBytesPerSecond", "must be 0 (off) or more");
        Check(Within(smtp.DataRateGrace, Seconds(1), Seconds(3600)), "Smtp.DataRateGraceSeconds", "must be 1-3600");
        Check(smtp.SoftErrorLimit > 0, "Smtp.SoftErrorLimit", "must be at least 1");
        Check(smtp.HardErrorLimit >= smtp.SoftErrorLimit, "Smtp.HardErrorLimit", "must be at least Smtp.SoftErrorLimit");
        Check(Within(smtp.ErrorDelay, TimeSpan.Zero, TimeSpan.FromMilliseconds(60000)), "Smtp.ErrorDelayMilliseconds", "must be 0-60000");
        return errors;
    }

    private static void CheckLimits(QuotaLimits limits, string prefix, bool required, Action<bool, string, string> check)
    {
        foreach (var (name, value) in new[]
        {
            ("MessagesPerHour", limits.MessagesPerHour), ("MessagesPerDay", limits.MessagesPerDay),
            ("RecipientsPerHour", limits.RecipientsPerHour), ("RecipientsPerDay", limits.RecipientsPerDay),
            ("Connections", limits.Connections),
        })
        {
            check(!required || value is not null, $"{prefix}.{name}", "must be set");
            check(value is null or >= 0, $"{prefix}.{name}", "must be 0 or more");
        }

        check(!required || limits.MessageSizeBytes is not null, $"{prefix}.MessageSizeBytes", "must be set");
        check(limits.MessageSizeBytes is null or >= 1024, $"{prefix}.MessageSizeBytes", "must be at least 1024");
        check(!required || limits.ConnectionsPerSecond is not null, $"{prefix}.ConnectionsPerSecond", "must be set");
        check(limits.ConnectionsPerSecond is null or (>= 0 and <= 1_000_000), $"{prefix}.ConnectionsPerSecond", "must be 0 (no limit) or 1-1000000");
        check(!required || limits.ConnectionsBurst is not null, $"{prefix}.ConnectionsBurst", "must be set");
        check(limits.ConnectionsBurst is null or (>= 1 and <= 1_000_000), $"{prefix}.ConnectionsBurst", "must be 1-1000000");
        check(!required || limits.RecipientsPerMessage is not null, $"{prefix}.RecipientsPerMessage", "must be set");
        check(limits.RecipientsPerMessage is null or (>= 1 and <= 1000), $"{prefix}.RecipientsPerMessage", "must be 1-1000");
    }

    private static TimeSpan Seconds(int seconds) => TimeSpan.FromSeconds(seconds);

    private static bool Within(TimeSpan value, TimeSpan least, TimeSpan most) => value >= least && value <= most;

    [GeneratedRegex(@"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")]
    private static partial Regex HostName();
}
