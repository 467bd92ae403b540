using Interceptor.Core.Attribution;
using Interceptor.Daemon.Decide;
using Interceptor.Linux;
using Interceptor.Netfilter;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Decide;

/// <summary>The sets that follow /etc/subuid are read as of now: the watchdog's expected table follows the file.</summary>
public class SuspendedUidSetsTests
{
    private static readonly RulesetSpec Spec = new("smtp_interceptor", 24, [25], [0]) { DefaultConnectionRate = new(20, 50) };

    private string _path = "";

    [SetUp]
    public void CreateFile()
    {
        _path = Path.GetTempFileName();
        File.WriteAllText(_path, "0:300000:65536\n");
    }

    [TearDown]
    public void DeleteFile() => File.Delete(_path);

    [Test]
    public void The_rate_ranges_and_the_suspended_ranges_come_from_the_file()
    {
        var sets = new SuspendedUidSets(new SubordinateUidFile(_path, NullLogger.Instance));

        var spec = sets.Apply(Spec, [0]);

        Assert.That(spec.SubordinateUidRanges, Is.EqualTo(new OwnedUidRange[] { new(0, new(300000, 365535)) }));
        Assert.That(spec.SuspendedUidRanges, Is.EqualTo(new UidRange[] { new(300000, 365535) }));
        Assert.That(sets.Apply(Spec, []).SuspendedUidRanges, Is.Empty, "nobody suspended: no suspended range, the rate ranges stay");
        Assert.That(sets.Apply(Spec, []).SubordinateUidRanges, Has.Count.EqualTo(1));
    }

    [Test]
    public void A_range_added_to_the_file_is_in_the_next_expected_table()
    {
        var file = new SubordinateUidFile(_path, NullLogger.Instance);
        var sets = new SuspendedUidSets(file);
        File.WriteAllText(_path + ".new", "0:300000:65536\n0:500000:10\n");
        File.Move(_path + ".new", _path, overwrite: true);

        // The file is checked at most once a second.
        RulesetSpec spec;
        var deadline = DateTime.UtcNow.AddSeconds(5);
        do
        {
            Thread.Sleep(200);
            spec = sets.Apply(Spec, []);
        }
        while (spec.SubordinateUidRanges.Count < 2 && DateTime.UtcNow < deadline);

        Assert.That(spec.SubordinateUidRanges, Is.EqualTo(new OwnedUidRange[] { new(0, new(300000, 365535)), new(0, new(500000, 500009)) }));
    }

    [Test]
    public void Without_a_file_to_follow_the_specs_own_ranges_are_kept()
    {
        var spec = Spec with { SubordinateUidRanges = [new(0, new(300000, 365535))] };

        Assert.That(SuspendedUidSets.None.Apply(spec, []).SubordinateUidRanges, Is.EqualTo(spec.SubordinateUidRanges));
    }
}
