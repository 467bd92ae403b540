using System.Globalization;
using Interceptor.Core.Options;
using Interceptor.Daemon.Fairness;
using Interceptor.Linux;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Intercept;

/// <summary>
/// The listener's part of pacing a flood among others (Fairness.*, FairShareScheduler.Pacing): the CPU pressure
/// reader, and the log lines that name the flooding user when its relaying is paced, reaches the floor, or is
/// no longer paced.
/// </summary>
internal sealed class FloodPacing : IDisposable
{
    private readonly CpuPressure? _pressure;
    private readonly ILogger _logger;

    public FloodPacing(FairnessOptions options, ILogger logger)
    {
        _logger = logger;
        if (options.PaceAbovePressurePercent == 0)
        {
            logger.FloodsNotPacedByConfiguration();
            return;
        }

        // This process's cgroup's pressure, else the machine's.
        var pressurePath = CpuPressure.PathForThisProcess();
        _pressure = CpuPressure.TryOpen(pressurePath);
        if (_pressure is null)
        {
            logger.FloodsNotPacedWithoutPressure(pressurePath);
            return;
        }

        Settings = new PaceSettings(options.PaceAbovePressurePercent / 100.0, options.PacedMinimumPercent / 100.0, _pressure.TryReadSomeTotal,
            ThreadCpuTime.Nanoseconds);
        logger.FloodsPaced(options.PaceAbovePressurePercent, pressurePath, pressurePath == CpuPressure.DefaultPath
            ? "the machine's: the daemon has no cgroup of its own, so a customer's busy loops at nice 19 or SCHED_IDLE can raise it and get a neighbour's flood paced"
            : "the daemon's own cgroup's: only waits the daemon suffers count", options.PacedMinimumPercent);
    }

    /// <summary>What the scheduler paces by; null when it never paces.</summary>
    public PaceSettings? Settings { get; }

    /// <summary>The scheduler's callback: on a pump, so the name only if already cached (a lookup may block).</summary>
    public void Changed(uint uid, double? share, double pressure)
    {
        var user = UserDatabase.TryCachedName(uid, out var name) && name is not null ? name : "?";
        if (share is { } paced)
        {
            _logger.FloodPaced(uid, user, paced * 100, pressure * 100);
        }
        else
        {
            _logger.FloodNoLongerPaced(uid, user, pressure >= 0
                ? string.Create(CultureInfo.InvariantCulture, $"the CPU pressure is down to {pressure * 100:0}%")
                : "no user has flooded among others for a second");
        }
    }

    public void Dispose() => _pressure?.Dispose();
}
