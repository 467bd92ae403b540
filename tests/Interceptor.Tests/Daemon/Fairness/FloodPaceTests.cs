using Interceptor.Daemon.Fairness;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Fairness;

/// <summary>
/// The pace of a flood among others follows the machine's CPU pressure: a share of a core that shrinks while the
/// pressure is above the threshold, grows while it is under half of it, and is gone once it covers every pump.
/// Timestamps are in TimeSpan ticks (10 MHz), pressure totals in microseconds, as the kernel counts them.
/// </summary>
public class FloodPaceTests
{
    private static readonly TimeSpan Every = TimeSpan.FromMilliseconds(100);
    private long _now;
    private long _total;

    [Test]
    public void A_first_sample_paces_nothing_and_a_contended_second_paces_to_half_a_core()
    {
        var pace = Pace();
        Assert.That(Sample(pace, pressure: 0), Is.False);
        Assert.That(pace.Share, Is.Null);

        Assert.That(Sample(pace, pressure: 0.9), Is.True);
        Assert.That(pace.Share, Is.EqualTo(FloodPace.InitialShare));
        Assert.That(pace.LastPressure, Is.EqualTo(0.9).Within(1e-9));
    }

    [Test]
    public void While_contended_the_share_shrinks_by_a_quarter_a_sample_down_to_the_minimum()
    {
        var pace = Pace(minimumShare: 0.1);
        Sample(pace, 0);
        var shares = Enumerable.Range(0, 8).Select(_ =>
        {
            Sample(pace, 0.5);
            return pace.Share!.Value;
        }).ToArray();

        Assert.That(shares, Is.EqualTo(new[] { 0.5, 0.375, 0.28125, 0.2109375, 0.158203125, 0.11865234375, 0.1, 0.1 }).Within(1e-9));
    }

    [Test]
    public void Between_half_the_threshold_and_the_threshold_the_share_holds()
    {
        var pace = Pace(pressureAbove: 0.2);
        Sample(pace, 0);
        Sample(pace, 0.5);
        Assert.That(Sample(pace, 0.15), Is.False);
        Assert.That(Sample(pace, 0.2), Is.False, "the threshold itself is not above it");
        Assert.That(pace.Share, Is.EqualTo(0.5));
    }

    [Test]
    public void Under_half_the_threshold_the_share_grows_until_it_covers_every_pump_and_pacing_ends()
    {
        var pace = Pace(concurrency: 2, pressureAbove: 0.2);
        Sample(pace, 0);
        Sample(pace, 0.9);
        var samples = 0;
        while (pace.Share is not null && samples < 100)
        {
            Sample(pace, 0.05);
            samples++;
        }

        Assert.That(pace.Share, Is.Null);
        Assert.That(samples, Is.EqualTo(30), "from 0.5 to 2 cores by 0.05");
    }

    [Test]
    public void A_quiet_second_between_samples_starts_over_unpaced()
    {
        var pace = Pace();
        Sample(pace, 0);
        Sample(pace, 0.9);
        _now += TimeSpan.FromSeconds(2).Ticks;
        _total += 1_900_000;

        Assert.That(pace.Sample(_now, _total), Is.True);
        Assert.That(pace.Share, Is.Null, "the flood that was paced is over; a new one starts unpaced");
        Assert.That(Sample(pace, 0.9), Is.True);
        Assert.That(pace.Share, Is.EqualTo(FloodPace.InitialShare));
    }

    [Test]
    public void An_unreadable_pressure_ends_pacing_and_the_next_reading_starts_over()
    {
        var pace = Pace();
        Sample(pace, 0);
        Sample(pace, 0.9);
        _now += Every.Ticks;

        Assert.That(pace.Sample(_now, -1), Is.True);
        Assert.That(pace.Share, Is.Null);
        Assert.That(Sample(pace, 0.9), Is.False, "the first good reading after it is a new start");
        Assert.That(Sample(pace, 0.9), Is.True);
    }

    [Test]
    public void Samples_closer_than_half_the_period_are_ignored()
    {
        var pace = Pace();
        Sample(pace, 0);
        _now += (Every / 4).Ticks;
        _total += 25_000;

        Assert.That(pace.Sample(_now, _total), Is.False);
        Assert.That(pace.LastPressure, Is.EqualTo(-1), "not measured over a quarter period");
    }

    [Test]
    public void A_total_that_went_backwards_is_a_new_start_not_a_negative_pressure()
    {
        var pace = Pace();
        Sample(pace, 0);
        Sample(pace, 0.9);
        _now += Every.Ticks;

        Assert.That(pace.Sample(_now, 5), Is.True);
        Assert.That(pace.Share, Is.Null);
    }

    private static FloodPace Pace(int concurrency = 2, double pressureAbove = 0.2, double minimumShare = 0.1) =>
        new(Every, TimeSpan.TicksPerSecond, concurrency, pressureAbove, minimumShare);

    // The next sample, a period on, with the given share of that period spent waiting for a CPU.
    private bool Sample(FloodPace pace, double pressure)
    {
        _now += Every.Ticks;
        _total += (long)(pressure * Every.TotalMicroseconds);
        return pace.Sample(_now, _total);
    }
}
