namespace Interceptor.Daemon.Hosting;

/// <summary>
/// A hosted service could not start and has already said why in the log (and done what failing closed needs, e.g. the
/// lockdown table): `run` exits with <see cref="ExitCode"/> without another word.
/// </summary>
public sealed class DaemonStartupException : Exception
{
    public DaemonStartupException()
    {
    }

    public DaemonStartupException(string message)
        : base(message)
    {
    }

    public DaemonStartupException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public DaemonStartupException(int exitCode, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        ExitCode = exitCode;
    }

    /// <summary>The exit code of `run` (3: a resource the daemon needs is unavailable).</summary>
    public int ExitCode { get; } = 3;
}
