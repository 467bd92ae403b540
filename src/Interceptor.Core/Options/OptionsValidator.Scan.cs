using Interceptor.Core.Net;

namespace Interceptor.Core.Options;

/// <summary>Content scanning's keys (issue 16): <c>Scan.*</c>.</summary>
public static partial class OptionsValidator
{
    /// <summary>The most <c>Scan.MaxBytes</c> may be: scanners are slow on big messages, and each scan holds a connection.</summary>
    public const long MostScannedBytes = 64L << 20;

    private static void CheckScan(ScanOptions scan, Action<bool, string, string> check)
    {
        check(Enum.IsDefined(scan.Engine), "Scan.Engine", "must be None, Spamd or Rspamd");
        check(Enum.IsDefined(scan.OnError), "Scan.OnError", "must be TempFail, Accept or Hold");
        if (Enum.IsDefined(scan.Engine) && scan.Engine != ScanEngine.None)
        {
            check(ScanEndpoint.Parse(scan.Engine, scan.Endpoint, out var problem) is not null, "Scan.Endpoint", problem ?? "");
        }

        check(Within(scan.Timeout, Seconds(1), Seconds(600)), "Scan.TimeoutSeconds", "must be 1-600");
        check(scan.MaxConcurrentPerUser is >= 1 and <= 1000, "Scan.MaxConcurrentPerUser", "must be 1-1000");
        check(scan.MaxSize.Bytes is >= 1024 and <= MostScannedBytes, "Scan.MaxBytes", $"must be 1024-{MostScannedBytes}");
        check(double.IsFinite(scan.RejectScore) && scan.RejectScore > 0, "Scan.RejectScore", "must be a score above 0");
        check(double.IsFinite(scan.HoldScore) && scan.HoldScore >= 0, "Scan.HoldScore", "must be 0 (never hold) or a score above 0");
        check(!(scan.HoldScore > 0 && scan.HoldScore >= scan.RejectScore), "Scan.HoldScore", $"{scan.HoldScore} must be below Scan.RejectScore ({scan.RejectScore}), or 0 (never hold)");
    }
}
