using System.Net;
using Interceptor.Core.Options;
using Interceptor.Daemon.Attribution;
using Interceptor.Linux;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Attribution;

public class UidAttributionTests
{
    // Far above any account a test machine has; the owner is root (uid 0), which every machine has.
    private const uint RangeStart = 3_000_000_000;
    private const uint Orphan = 3_100_000_000;

    private static readonly IPEndPoint Client = IPEndPoint.Parse("127.0.0.1:40000");
    private static readonly IPEndPoint Destination = IPEndPoint.Parse("192.0.2.1:25");

    private string _path = "";

    [SetUp]
    public void WriteFile()
    {
        _path = Path.GetTempFileName();
        File.WriteAllText(_path, $"0:{RangeStart}:65536\n");
    }

    [TearDown]
    public void DeleteFile() => File.Delete(_path);

    private UidAttribution Attribution(UnknownUidHandling unknown) =>
        new(new SubordinateUidFile(_path, NullLogger.Instance), unknown, NullLogger.Instance);

    [Test]
    public void A_sub_uid_is_charged_to_its_owner_and_keeps_its_own_number()
    {
        var (origin, refusal) = Attribution(UnknownUidHandling.Refuse).Resolve(RangeStart + 5, Client, Destination);
        Assert.Multiple(() =>
        {
            Assert.That(refusal, Is.Null);
            Assert.That(origin!.Uid, Is.Zero);
            Assert.That(origin.User, Is.EqualTo("root"));
            Assert.That(origin.SubordinateUid, Is.EqualTo(RangeStart + 5));
        });
    }

    [Test]
    public void A_uid_with_an_account_is_itself()
    {
        var (origin, refusal) = Attribution(UnknownUidHandling.Refuse).Resolve(0, Client, Destination);
        Assert.Multiple(() =>
        {
            Assert.That(refusal, Is.Null);
            Assert.That(origin!.User, Is.EqualTo("root"));
            Assert.That(origin.SubordinateUid, Is.Null);
        });
    }

    [Test]
    public void A_uid_of_nobody_is_refused_by_default_and_relayed_under_its_number_when_configured()
    {
        var (refusedOrigin, refusal) = Attribution(UnknownUidHandling.Refuse).Resolve(Orphan, Client, Destination);
        var (relayed, none) = Attribution(UnknownUidHandling.Relay).Resolve(Orphan, Client, Destination);
        Assert.Multiple(() =>
        {
            Assert.That(refusedOrigin, Is.Null);
            Assert.That(refusal!.ToString(), Does.StartWith(
                $"421 4.7.1 uid {Orphan} has no account on this host and is not a subordinate uid of one; mail of unknown origin is not relayed"));
            Assert.That(none, Is.Null);
            Assert.That(relayed!.User, Is.EqualTo($"#{Orphan}"));
        });
    }
}
