using System.Globalization;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Linux;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Decide;

/// <summary>
/// Runs the admin's Alerts.Command on every suspension (SMTPI_EVENT=suspension), on a listener lockdown
/// (SMTPI_EVENT=lockdown) and when the state store had to prune to stay under State.MaxBytes (SMTPI_EVENT=store-pruned),
/// through /bin/sh so it can be a pipeline, with the facts in its environment: SMTPI_UID, SMTPI_USER, SMTPI_REASON,
/// SMTPI_SOURCE, SMTPI_SINCE and the counts.
/// Bounded in time; its failure is logged and never stops the suspension.
/// </summary>
public sealed class AlertCommand(AlertsOptions options, ILogger logger) : ISuspensionAlert
{
    public Task NotifyAsync(Suspension suspension, IReadOnlyDictionary<string, string> counts, CancellationToken cancellationToken)
    {
        var environment = new Dictionary<string, string>(counts)
        {
            ["SMTPI_EVENT"] = "suspension",
            ["SMTPI_UID"] = suspension.Uid.ToString(CultureInfo.InvariantCulture),
            ["SMTPI_USER"] = suspension.User,
            ["SMTPI_REASON"] = suspension.Reason,
            ["SMTPI_SOURCE"] = suspension.Source == SuspensionSource.Admin ? "admin" : "automatic",
            ["SMTPI_SINCE"] = suspension.Since.ToString("O", CultureInfo.InvariantCulture),
        };
        return RunAsync(environment, $"uid={suspension.Uid} user={suspension.User}", cancellationToken);
    }

    /// <summary>
    /// The listener lockdown (issue 12.1): SMTPI_SOURCE=listener, SMTPI_REASON what happened ("lockdown: …" or
    /// "lockdown lifted: …"), SMTPI_UID and SMTPI_USER the foreign listener's owner when one was found (else empty).
    /// </summary>
    public Task NotifyListenerAsync(string reason, uint? uid, string? user, DateTimeOffset since, CancellationToken cancellationToken)
    {
        var environment = new Dictionary<string, string>
        {
            ["SMTPI_EVENT"] = "lockdown",
            ["SMTPI_UID"] = uid?.ToString(CultureInfo.InvariantCulture) ?? "",
            ["SMTPI_USER"] = user ?? "",
            ["SMTPI_REASON"] = reason,
            ["SMTPI_SOURCE"] = "listener",
            ["SMTPI_SINCE"] = since.ToString("O", CultureInfo.InvariantCulture),
        };
        return RunAsync(environment, "the listener lockdown", cancellationToken);
    }

    /// <summary>The state store had to prune to stay under State.MaxBytes: SMTPI_EVENT=store-pruned, SMTPI_REASON and the figures.</summary>
    public Task NotifyStorePrunedAsync(string reason, IReadOnlyDictionary<string, string> facts, CancellationToken cancellationToken)
    {
        var environment = new Dictionary<string, string>(facts)
        {
            ["SMTPI_EVENT"] = "store-pruned",
            ["SMTPI_REASON"] = reason,
        };
        return RunAsync(environment, "the state store", cancellationToken);
    }

    /// <summary>A released held message failed for good: SMTPI_EVENT=hold-failed, SMTPI_REASON and the message's facts.</summary>
    public Task NotifyHoldFailedAsync(string reason, IReadOnlyDictionary<string, string> facts, CancellationToken cancellationToken)
    {
        var environment = new Dictionary<string, string>(facts)
        {
            ["SMTPI_EVENT"] = "hold-failed",
            ["SMTPI_REASON"] = reason,
            ["SMTPI_SOURCE"] = "hold",
        };
        return RunAsync(environment, "a held message", cancellationToken);
    }

    /// <summary>A DKIM key cannot be used (issue 17): SMTPI_EVENT=dkim-key, SMTPI_DOMAIN and SMTPI_REASON; mail goes unsigned.</summary>
    public Task NotifyDkimKeyAsync(string domain, string reason, CancellationToken cancellationToken) =>
        RunAsync(new Dictionary<string, string> { ["SMTPI_EVENT"] = "dkim-key", ["SMTPI_DOMAIN"] = domain, ["SMTPI_REASON"] = reason }, $"the DKIM key of {domain}", cancellationToken);

    /// <summary>
    /// A relay pool event (issue 15): SMTPI_EVENT relay-burned, relay-promoted, relay-reserve-empty, relay-returned,
    /// relay-restored, host-burned, host-restored, relay-login-refused (with SMTPI_USER) or dnsbl-error; SMTPI_RELAY and
    /// SMTPI_REASON always. Never a login or password.
    /// </summary>
    public Task NotifyPoolAsync(string eventName, IReadOnlyDictionary<string, string> facts, CancellationToken cancellationToken)
    {
        var environment = new Dictionary<string, string>(facts) { ["SMTPI_EVENT"] = eventName };
        return RunAsync(environment, $"relay {facts.GetValueOrDefault("SMTPI_RELAY", "")}", cancellationToken);
    }

    private async Task RunAsync(IReadOnlyDictionary<string, string> environment, string subject, CancellationToken cancellationToken)
    {
        if (options.Command.Length == 0)
        {
            return;
        }

        var request = new ProcessRequest("/bin/sh", ["-c", options.Command]) { Environment = environment, Timeout = options.Timeout };
        try
        {
            var result = await ProcessRunner.RunAsync(request, cancellationToken);
            if (result.ExitCode != 0)
            {
                logger.Failed(subject, result.ExitCode, result.StandardError.Trim());
            }
            else
            {
                logger.Ran(subject, result.StandardOutput.Trim());
            }
        }
        catch (Exception e) when (e is ProcessTimedOutException or OperationCanceledException)
        {
            // Also on the daemon's shutdown: the command is killed either way, and the suspension stands.
            logger.Killed(subject, (int)options.Timeout.TotalSeconds);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            logger.CouldNotStart(e.Message);
        }
    }
}
