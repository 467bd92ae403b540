using System.Text;
using Interceptor.Linux;
using NUnit.Framework;

namespace Interceptor.Tests.Linux;

/// <summary>
/// The machine's CPU pressure: the "some" line's running total, parsed from the kernel's format, read again and again
/// through one open file (a seq_file read from offset 0 shows fresh figures).
/// </summary>
public class CpuPressureTests
{
    [Test]
    public void The_some_lines_total_is_read_from_the_kernels_format()
    {
        // /proc/pressure/cpu on 6.18 (the full line is all zeros at the system level since 5.13).
        var text = "some avg10=0.01 avg60=3.27 avg300=10.50 total=6422480735\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        Assert.That(CpuPressure.ParseSomeTotal(Encoding.ASCII.GetBytes(text)), Is.EqualTo(6422480735L));
    }

    [TestCase("")]
    [TestCase("full avg10=0.00 avg60=0.00 avg300=0.00 total=5\n")]
    [TestCase("some avg10=0.01 avg60=3.27 avg300=10.50\n")]
    [TestCase("some avg10=0.01 avg60=3.27 avg300=10.50 total=\n")]
    [TestCase("some avg10=0.01 avg60=3.27 avg300=10.50 total=12x4\n")]
    [TestCase("some avg10=0.01 avg60=3.27 avg300=10.50 total=99999999999999999999999\n")]
    public void Anything_else_is_no_reading(string text)
    {
        Assert.That(CpuPressure.ParseSomeTotal(Encoding.ASCII.GetBytes(text)), Is.EqualTo(-1));
    }

    [Test]
    public void The_kernels_file_is_read_again_through_the_same_handle_and_counts_time_spent_waiting()
    {
        using var pressure = CpuPressure.TryOpen();
        if (pressure is null)
        {
            Assert.Fail("this kernel gives no /proc/pressure/cpu (CONFIG_PSI, psi=1): the daemon could not pace floods here");
            return;
        }

        var first = pressure.TryReadSomeTotal();
        // Three busy threads on every core for a moment: some task waits for a CPU, and the total must move.
        using var stop = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        var busy = Enumerable.Range(0, Environment.ProcessorCount + 2).Select(_ => Task.Factory.StartNew(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                Thread.SpinWait(1000);
            }
        }, TaskCreationOptions.LongRunning)).ToArray();
        Task.WaitAll(busy);
        var second = pressure.TryReadSomeTotal();

        Assert.That(first, Is.GreaterThanOrEqualTo(0));
        Assert.That(second, Is.GreaterThan(first), "a second read from offset 0 gives fresh figures, not the first's");
    }

    [Test]
    public void A_process_in_a_cgroup_of_its_own_reads_that_cgroups_pressure_and_one_at_the_root_the_machines()
    {
        var root = Directory.CreateTempSubdirectory("smtpi-psi-").FullName;
        try
        {
            var proc = Directory.CreateDirectory(Path.Combine(root, "proc")).FullName;
            var hierarchy = Path.Combine(root, "cgroup");
            var unit = Directory.CreateDirectory(Path.Combine(hierarchy, "system.slice", "smtp-interceptor.service")).FullName;
            File.WriteAllText(Path.Combine(unit, "cpu.pressure"), "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n");
            // As on Debian 12: the v2 hierarchy at /sys/fs/cgroup (here a directory of the test), with optional fields.
            File.WriteAllText(Path.Combine(proc, "mountinfo"),
                "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n" +
                $"30 22 0:26 / {hierarchy} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n");

            File.WriteAllText(Path.Combine(proc, "cgroup"), "0::/system.slice/smtp-interceptor.service\n");
            Assert.That(CpuPressure.PathForThisProcess(proc), Is.EqualTo(Path.Combine(unit, "cpu.pressure")));

            // A mount point with a space, which mountinfo writes as \040.
            var spaced = Directory.CreateDirectory(Path.Combine(root, "cgroup two", "svc")).FullName;
            File.WriteAllText(Path.Combine(spaced, "cpu.pressure"), "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n");
            File.WriteAllText(Path.Combine(proc, "mountinfo"), $"30 22 0:26 / {Path.Combine(root, "cgroup\\040two")} rw shared:4 - cgroup2 cgroup2 rw\n");
            File.WriteAllText(Path.Combine(proc, "cgroup"), "0::/svc\n");
            Assert.That(CpuPressure.PathForThisProcess(proc), Is.EqualTo(Path.Combine(spaced, "cpu.pressure")));

            File.WriteAllText(Path.Combine(proc, "cgroup"), "0::/\n");
            Assert.That(CpuPressure.PathForThisProcess(proc), Is.EqualTo(CpuPressure.DefaultPath), "the root's pressure is the machine's");

            File.WriteAllText(Path.Combine(proc, "cgroup"), "0::/user.slice/gone.scope\n");
            Assert.That(CpuPressure.PathForThisProcess(proc), Is.EqualTo(CpuPressure.DefaultPath), "no such cgroup file: the machine's");

            File.WriteAllText(Path.Combine(proc, "cgroup"), "12:cpu,cpuacct:/system.slice\n1:name=systemd:/system.slice\n");
            Assert.That(CpuPressure.PathForThisProcess(proc), Is.EqualTo(CpuPressure.DefaultPath), "v1 only: the machine's");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Test]
    public void A_kernel_without_the_file_gives_no_reader()
    {
        Assert.That(CpuPressure.TryOpen("/proc/pressure/no-such-resource"), Is.Null);
        var notPressure = Path.GetTempFileName();
        try
        {
            File.WriteAllText(notPressure, "not pressure\n");
            Assert.That(CpuPressure.TryOpen(notPressure), Is.Null, "a file that does not read as pressure is no reader either");
        }
        finally
        {
            File.Delete(notPressure);
        }
    }
}
