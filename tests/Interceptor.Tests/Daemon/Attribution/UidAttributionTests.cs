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
    public void A_refusal_of_a_sub_uid_is_logged_against_its_owner_naming_the_sub_uid_and_others_as_themselves()
    {
        // What keeps a thousand sub-UIDs from filling the refusal log's keys for a cause (attack review).
        var attribution = Attribution(UnknownUidHandling.Refuse);
        Assert.Multiple(() =>
        {
            Assert.That(attribution.ChargedForLog(RangeStart + 7), Is.EqualTo(((uint?)0u, (string?)$"sent as sub-UID {RangeStart + 7}")));
            Assert.That(attribution.ChargedForLog(Orphan), Is.EqualTo(((uint?)Orphan, (string?)null)));
            Assert.That(attribution.ChargedForLog(null), Is.EqualTo(((uint?)null, (string?)null)));
        });
    }

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

    [Test]
    public void The_cached_resolution_answers_only_what_needs_neither_nss_nor_a_look_at_the_subuid_file()
    {
        // A uid no other test uses: whether its name is cached depends on this test alone.
        const uint NoAccount = 3_200_000_001;
        var attribution = Attribution(UnknownUidHandling.Refuse);

        // The file was just read: a sub-UID's owner comes from the map.
        Assert.That(attribution.TryResolveCached(RangeStart + 7, Client, Destination, out var sub), Is.True);
        Assert.That((sub.Origin?.Uid, sub.Origin?.SubordinateUid), Is.EqualTo(((uint?)0, (uint?)(RangeStart + 7))));

        // A name not cached would need NSS: not answered here.
        Assert.That(attribution.TryResolveCached(NoAccount, Client, Destination, out _), Is.False);
        var (none, refusal) = attribution.Resolve(NoAccount, Client, Destination);
        Assert.That((none, refusal?.Code), Is.EqualTo(((Interceptor.Smtp.Session.ConnectionOrigin?)null, (int?)421)));

        // Now cached (a negative answer too), and answered the same way.
        Assert.That(attribution.TryResolveCached(NoAccount, Client, Destination, out var cached), Is.True);
        Assert.That((cached.Origin, cached.Refusal?.Code), Is.EqualTo(((Interceptor.Smtp.Session.ConnectionOrigin?)null, (int?)421)));
        attribution.Resolve(0, Client, Destination);
        Assert.That(attribution.TryResolveCached(0, Client, Destination, out var root), Is.True);
        Assert.That(root.Origin?.User, Is.EqualTo("root"));

        // Once a second the file is due for a look (a stat, maybe a reload): not on the cached path.
        Thread.Sleep(1100);
        Assert.That(attribution.TryResolveCached(0, Client, Destination, out _), Is.False);
        attribution.Resolve(0, Client, Destination);
        Assert.That(attribution.TryResolveCached(0, Client, Destination, out _), Is.True);
    }
}
