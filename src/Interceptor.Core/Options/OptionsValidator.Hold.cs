namespace Interceptor.Core.Options;

/// <summary>Hold-and-release's keys (issue 16): <c>Hold.*</c> and <c>Suspension.Action</c>.</summary>
public static partial class OptionsValidator
{
    private static void CheckHold(InterceptorOptions options, Action<bool, string, string> check)
    {
        var hold = options.Hold;
        check(hold.Directory.Length == 0 || Path.IsPathRooted(hold.Directory), "Hold.Directory", "must be empty (State.Directory/held) or an absolute path");
        check(hold.Directory.TrimEnd('/') != options.State.Directory.TrimEnd('/'), "Hold.Directory", "must not be State.Directory itself (its mode is 0700, the store's 0750)");
        check(Within(hold.Retention, TimeSpan.FromDays(1), TimeSpan.FromDays(3650)), "Hold.RetentionDays", "must be 1-3650");
        check(Within(hold.ReleaseRetry, TimeSpan.FromHours(1), TimeSpan.FromDays(30)), "Hold.ReleaseRetryHours", "must be 1-720");
        check(Enum.IsDefined(options.Suspension.Action), "Suspension.Action", "must be Refuse or Hold");
    }
}
