using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Decide;

/// <summary>Log lines of Alerts.Command (event ids 800-849).</summary>
internal static partial class AlertLog
{
    [LoggerMessage(800, LogLevel.Error, "alert command for {Subject} killed after {Seconds} s")]
    public static partial void Killed(this ILogger logger, string subject, int seconds);

    [LoggerMessage(801, LogLevel.Error, "alert command for {Subject} exited {ExitCode}: {Error}")]
    public static partial void Failed(this ILogger logger, string subject, int exitCode, string error);

    [LoggerMessage(802, LogLevel.Information, "alert command ran for {Subject}: {Output}")]
    public static partial void Ran(this ILogger logger, string subject, string output);

    [LoggerMessage(803, LogLevel.Error, "alert command could not start: {Reason}")]
    public static partial void CouldNotStart(this ILogger logger, string reason);
}
