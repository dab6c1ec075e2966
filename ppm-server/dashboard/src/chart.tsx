// A dependency-free SVG line chart for time series.

export interface Series {
  name: string;
  color: string;
  points: [number, number][]; // [unix ms, value]
}

export function LineChart({ series, height = 160, format = (v: number) => String(Math.round(v * 100) / 100), label }: { series: Series[]; height?: number; format?: (v: number) => string; label: string }) {
  const width = 600;
  const pad = { l: 44, r: 8, t: 8, b: 20 };
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const x0 = Math.min(...xs, Date.now() - 60_000);
  const x1 = Math.max(...xs, x0 + 1);
  const y1 = Math.max(1, ...ys) * 1.1;
  const sx = (x: number) => pad.l + ((x - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const sy = (y: number) => height - pad.b - (y / y1) * (height - pad.t - pad.b);
  const ticks = [0, y1 / 2, y1];
  return (
    <figure className="chart" aria-label={label} data-points={all.length} data-max={Math.max(0, ...ys)}>
      <svg viewBox={`0 0 ${width} ${height}`} preserveAspectRatio="none" role="img" aria-label={label}>
        {ticks.map((t, i) => (
          <g key={i}>
            <line x1={pad.l} x2={width - pad.r} y1={sy(t)} y2={sy(t)} className="grid" />
            <text x={pad.l - 4} y={sy(t) + 4} textAnchor="end" className="tick">
              {format(t)}
            </text>
          </g>
        ))}
        {series.map((s) =>
          s.points.length === 0 ? null : (
            <polyline
              key={s.name}
              fill="none"
              stroke={s.color}
              strokeWidth={2}
              vectorEffect="non-scaling-stroke"
              points={s.points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ")}
              data-series={s.name}
            />
          ),
        )}
        {series.map((s) => {
          // The newest value, as a dot (also what shows a one-point series).
          const last = s.points[s.points.length - 1];
          return last ? <circle key={s.name + "-last"} cx={sx(last[0])} cy={sy(last[1])} r={3} fill={s.color} /> : null;
        })}
      </svg>
      <figcaption>
        {series.map((s) => (
          <span key={s.name} className="legend">
            <i style={{ background: s.color }} /> {s.name}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}
