using Interceptor.Daemon.Attribution;
using Interceptor.Linux;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Attribution;

/// <summary>
/// The process lookup's results are kept per socket uid for a few seconds; a customer with subordinate UIDs connects
/// from a new one each time, so the cache must stay bounded whatever it does.
/// </summary>
public class ProcessAttributionTests
{
    private static readonly SocketProcess LongPaths = new(4242, "/home/site/" + new string('e', 2000), "/home/site/" + new string('w', 2000), "php spam.php");

    [Test]
    public void Results_for_ever_new_subordinate_uids_stay_within_the_bound()
    {
        var attribution = new ProcessAttribution();
        var now = 1_000_000L;
        for (uint uid = 100_000; uid < 100_000 + 10 * ProcessAttribution.MaxRemembered; uid++)
        {
            attribution.Remember(uid, now, LongPaths);
            now += 1; // all within the reuse period: nothing has expired
        }

        Assert.That(attribution.Remembered, Is.LessThanOrEqualTo(ProcessAttribution.MaxRemembered));
    }

    [Test]
    public void Past_the_bound_only_expired_results_go_when_that_is_enough()
    {
        var attribution = new ProcessAttribution();
        for (uint uid = 0; uid < ProcessAttribution.MaxRemembered; uid++)
        {
            attribution.Remember(uid, 0, LongPaths);
        }

        var later = (long)ProcessAttribution.ReuseFor.TotalMilliseconds;
        attribution.Remember(1_000_000, later, LongPaths);

        Assert.That(attribution.Remembered, Is.EqualTo(1), "the expired ones went, the fresh one stayed");
    }
}
