// Line charts as plain SVG, each with a table of its figures for screen readers and for anyone who would rather read.
// Hand-drawn: four small line charts need a scale, gridlines and polylines, far less than a charting library ships.

const SVG = 'http://www.w3.org/2000/svg'
// The drawing is made at the plot's own width in CSS pixels, so that text is never stretched; 640 before layout.
const FALLBACK_WIDTH = 640
const H = 180
const M = { left: 48, right: 10, top: 10, bottom: 26 }

function el(name, attributes = {}, text) {
  const node = document.createElementNS(SVG, name)
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value))
  if (text !== undefined) node.textContent = text
  return node
}

/** 1, 2, 5 times a power of ten: a top for the scale a person reads at a glance. */
function niceTop(max) {
  if (!(max > 0)) return 1
  const power = 10 ** Math.floor(Math.log10(max))
  for (const step of [1, 2, 5, 10]) if (step * power >= max) return step * power
  return 10 * power
}

const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })

/**
 * Draws `series` ({ name, values, className }) over `times` (ISO strings) into `plot`, and its table into `table`.
 * A null value leaves a gap (no sample then). `format` writes a value for the axis and the table.
 */
export function lineChart({ plot, table, title, times, series, format = (v) => String(v) }) {
  const W = Math.max(240, Math.round(plot.clientWidth) || FALLBACK_WIDTH)
  const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined)
  const top = niceTop(Math.max(0, ...all))
  const x = (i) => M.left + (times.length <= 1 ? 0 : (i * (W - M.left - M.right)) / (times.length - 1))
  const y = (v) => H - M.bottom - (v / top) * (H - M.top - M.bottom)

  const latest = series.map((s) => {
    const last = [...s.values].reverse().find((v) => v !== null && v !== undefined)
    return `${s.name} ${last === undefined ? 'none' : format(last)}`
  })
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart-svg' })
  svg.append(el('title', {}, `${title}. Latest: ${latest.join(', ')}.`))
  for (const fraction of [0, 0.5, 1]) {
    const value = top * fraction
    svg.append(el('line', { x1: M.left, x2: W - M.right, y1: y(value), y2: y(value), class: 'grid' }))
    svg.append(el('text', { x: M.left - 6, y: y(value) + 4, 'text-anchor': 'end', class: 'axis' }, format(value)))
  }
  if (times.length > 0) {
    for (const i of [0, Math.floor((times.length - 1) / 2), times.length - 1]) {
      const anchor = i === 0 ? 'start' : i === times.length - 1 ? 'end' : 'middle'
      svg.append(el('text', { x: x(i), y: H - 6, 'text-anchor': anchor, class: 'axis' }, clock(times[i])))
    }
  }
  series.forEach((s, n) => {
    // A run of samples is one polyline; a gap (null) starts the next.
    let run = []
    const flush = () => {
      if (run.length === 1) svg.append(el('circle', { cx: run[0][0], cy: run[0][1], r: 2.5, class: `series s${s.className ?? n}` }))
      if (run.length > 1) svg.append(el('polyline', { points: run.map((p) => p.join(',')).join(' '), class: `series s${s.className ?? n}` }))
      run = []
    }
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) flush()
      else run.push([x(i).toFixed(1), y(v).toFixed(1)])
    })
    flush()
  })
  plot.replaceChildren(svg)

  const legend = document.createElement('ul')
  legend.className = 'legend'
  series.forEach((s, n) => {
    const item = document.createElement('li')
    const swatch = document.createElement('span')
    swatch.className = `swatch s${s.className ?? n}`
    item.append(swatch, s.name)
    legend.append(item)
  })
  plot.append(legend)

  const grid = document.createElement('table')
  const head = grid.createTHead().insertRow()
  for (const name of ['Time', ...series.map((s) => s.name)]) {
    const th = document.createElement('th')
    th.scope = 'col'
    th.textContent = name
    head.append(th)
  }
  const body = grid.createTBody()
  times.forEach((time, i) => {
    const row = body.insertRow()
    const th = document.createElement('th')
    th.scope = 'row'
    th.textContent = clock(time)
    row.append(th)
    for (const s of series) {
      const v = s.values[i]
      const td = row.insertCell()
      td.textContent = v === null || v === undefined ? '–' : format(v)
      if (v !== null && v !== undefined) td.dataset.value = String(v)
    }
  })
  table.replaceChildren(grid)
}
