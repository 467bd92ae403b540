using System.Globalization;
using Interceptor.Core.Options;
using Interceptor.Core.Replies;
using Interceptor.Smtp.Data;
using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Scan;

/// <summary>
/// Content scanning (issue 16): once the client's message is complete, and before the upstream gets its end, a scanner
/// scores it. At or over <c>Scan.RejectScore</c> it is refused (550 5.7.1; the refusal counts toward automatic suspension
/// like a quota refusal), in the hold band it is held, below it relayed. A scanner that cannot judge it (down, slow past
/// <c>Scan.TimeoutSeconds</c>, answering garbage) leads to <c>Scan.OnError</c>: never a hang, never a 250 for a message
/// that is neither relayed nor held. Messages over <c>Scan.MaxBytes</c> are relayed unscanned (logged). A user has at
/// most <c>Scan.MaxConcurrentPerUser</c> scans at the scanner; the wait for one is bounded by the timeout, and the scan
/// then has a timeout of its own.
/// </summary>
public sealed class ScanStage(IContentScanner scanner, ScanOptions options, string heloName, bool canHold, ILogger logger) : IMessageStage
{
    private readonly PerUserScanSlots _slots = new(options.MaxConcurrentPerUser);

    /// <summary>How many rule names the log line and the finding carry.</summary>
    public const int TopSymbols = 5;

    public string Name => "scan";

    public bool NeedsWholeMessage => true;

    public ReadOnlyMemory<byte> HeadersFor(MessageContext message) => ReadOnlyMemory<byte>.Empty;

    public async ValueTask<StageVerdict> CompleteAsync(MessageContext message, IMessageSpool? spool, CancellationToken token)
    {
        ArgumentNullException.ThrowIfNull(spool);
        var origin = message.Origin;
        if (spool.Length > options.MaxSize.Bytes)
        {
            ScanLog.NotScannedTooBig(logger, message.TransactionId, origin.Uid, origin.User, spool.Length, options.MaxSize.Bytes);
            return StageVerdict.Continue;
        }

        var seconds = options.Timeout.TotalSeconds.ToString(CultureInfo.InvariantCulture);
        PerUserScanSlots.Lease slot;
        using (var waiting = CancellationTokenSource.CreateLinkedTokenSource(token))
        {
            waiting.CancelAfter(options.Timeout);
            try
            {
                slot = await _slots.EnterAsync(origin.Uid, waiting.Token);
            }
            catch (OperationCanceledException) when (!token.IsCancellationRequested)
            {
                // Her own scans held her slots: never Scan.OnError's Accept (two slow messages would let a third through
                // unscanned). Not counted against her either: her holders may be stuck on a scanner someone else wedged.
                var reason = $"no free scan slot within {seconds} s (Scan.TimeoutSeconds): {_slots.PerUser} scans of user {origin.User} already running (Scan.MaxConcurrentPerUser)";
                ScanLog.Failed(logger, message.TransactionId, origin.Uid, origin.User, scanner.Name, reason, ScanErrorAction.TempFail);
                return StageVerdict.Defer(CouldNotScan(reason));
            }
        }

        // The scan gets its own full timeout once it has a slot: a budget shared with the wait would leave a message that
        // got its slot late a few milliseconds, and Scan.OnError's Accept would then let it through unscanned.
        ScanResult result;
        using (slot)
        using (var bounded = CancellationTokenSource.CreateLinkedTokenSource(token))
        {
            bounded.CancelAfter(options.Timeout);
            try
            {
                result = await scanner.ScanAsync(new ScanRequest(message, spool, heloName), bounded.Token);
            }
            catch (OperationCanceledException) when (!token.IsCancellationRequested)
            {
                return OnError(message, $"no verdict within {seconds} s (Scan.TimeoutSeconds)");
            }
            catch (ScanFailedException e)
            {
                return OnError(message, e.Message);
            }
        }

        return Judge(message, result);
    }

    private StageVerdict Judge(MessageContext message, ScanResult result)
    {
        var origin = message.Origin;
        var top = result.Symbols.Take(TopSymbols).ToList();
        var symbols = string.Join(",", top);
        var score = Number(result.Score);
        if (result.Score >= options.RejectScore)
        {
            var finding = new StageFinding($"spam score {score} (reject {Number(options.RejectScore)}) {symbols}".TrimEnd(), result.Score, top);
            ScanLog.Refused(logger, message.TransactionId, origin.Uid, origin.User, result.Score, options.RejectScore, symbols, scanner.Name);
            return StageVerdict.Refuse(new SmtpReply(550, "5.7.1", $"message refused as spam (score {score}, limit {Number(options.RejectScore)}) for user {origin.User}"), finding);
        }

        if (options.HoldScore > 0 && result.Score >= options.HoldScore)
        {
            ScanLog.InHoldBand(logger, message.TransactionId, origin.Uid, origin.User, result.Score, options.HoldScore, symbols, scanner.Name);
            var finding = new StageFinding($"spam score {score} (hold {Number(options.HoldScore)}, reject {Number(options.RejectScore)}) {symbols}".TrimEnd(), result.Score, top);
            return canHold
                ? StageVerdict.Hold(finding)
                : StageVerdict.Refuse(new SmtpReply(451, "4.7.0", $"message held back as possible spam (score {score}, hold {Number(options.HoldScore)}) for user {origin.User}: no hold store; try again later"));
        }

        ScanLog.Passed(logger, message.TransactionId, origin.Uid, origin.User, result.Score, symbols, scanner.Name);
        return StageVerdict.Continue;
    }

    /// <summary>
    /// Scan.OnError. A TempFail carries no finding and counts toward no quota or suspension, only toward
    /// Suspension.LocalFailureLimit (a 451 at MAIL for a while): the scanner is shared and reachable by every local user, so
    /// whose load made it slow cannot be known (a user who wedges it must not get her neighbours charged).
    /// </summary>
    private StageVerdict OnError(MessageContext message, string reason)
    {
        var origin = message.Origin;
        ScanLog.Failed(logger, message.TransactionId, origin.Uid, origin.User, scanner.Name, reason, options.OnError);
        return options.OnError switch
        {
            ScanErrorAction.Accept => StageVerdict.Continue,
            ScanErrorAction.Hold when canHold => StageVerdict.Hold(new StageFinding($"not scanned: {reason}")),
            _ => StageVerdict.Defer(CouldNotScan(reason)),
        };
    }

    private static SmtpReply CouldNotScan(string reason) => new(451, "4.7.0", $"the message could not be scanned for spam ({reason}); try again later");

    private static string Number(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);
}
