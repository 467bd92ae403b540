using System.Diagnostics;
using System.Globalization;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Decide;

/// <summary>
/// Runs the admin's Alerts.Command on every suspension (through /bin/sh, so it can be a pipeline), with the
/// facts in its environment: SMTPI_UID, SMTPI_USER, SMTPI_REASON, SMTPI_SOURCE, SMTPI_SINCE and the counts.
/// Bounded in time; its failure is logged and never stops the suspension.
/// </summary>
public sealed class AlertCommand(AlertsOptions options, ILogger logger) : ISuspensionAlert
{
    public async Task NotifyAsync(Suspension suspension, IReadOnlyDictionary<string, string> counts, CancellationToken cancellationToken)
    {
        if (options.Command.Length == 0)
        {
            return;
        }

        var info = new ProcessStartInfo("/bin/sh")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(options.Command);
        info.Environment["SMTPI_UID"] = suspension.Uid.ToString(CultureInfo.InvariantCulture);
        info.Environment["SMTPI_USER"] = suspension.User;
        info.Environment["SMTPI_REASON"] = suspension.Reason;
        info.Environment["SMTPI_SOURCE"] = suspension.Source == SuspensionSource.Admin ? "admin" : "automatic";
        info.Environment["SMTPI_SINCE"] = suspension.Since.ToString("O", CultureInfo.InvariantCulture);
        foreach (var (name, value) in counts)
        {
            info.Environment[name] = value;
        }

        try
        {
            using var process = Process.Start(info)!;
            var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var error = process.StandardError.ReadToEndAsync(cancellationToken);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(options.TimeoutSeconds));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                logger.LogError("alert command for uid={Uid} user={User} killed after {Seconds} s", suspension.Uid, suspension.User, options.TimeoutSeconds);
                return;
            }

            if (process.ExitCode != 0)
            {
                logger.LogError("alert command for uid={Uid} user={User} exited {ExitCode}: {Error}", suspension.Uid, suspension.User, process.ExitCode, (await error).Trim());
            }
            else
            {
                logger.LogInformation("alert command ran for uid={Uid} user={User}: {Output}", suspension.Uid, suspension.User, (await output).Trim());
            }
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            logger.LogError("alert command could not start: {Reason}", e.Message);
        }
    }
}
