// The before/after viewer: the input enlarged to the result's size without smoothing (image-rendering: pixelated),
// the result over it clipped at the divider; zoom (buttons, wheel, + - 0 1 keys) and pan (drag, arrow keys).
// Zoom 100 % is 1:1: one image pixel on one pixel of the screen (device pixels).
"use strict";
(function () {
  const MAX_ZOOM = 32;

  class Compare {
    constructor() {
      this.stage = document.getElementById("stage");
      this.content = document.getElementById("content");
      this.before = document.getElementById("before");
      this.after = document.getElementById("after");
      this.divider = document.getElementById("divider");
      this.split = document.getElementById("split");
      this.level = document.getElementById("zoom-level");
      this.width = 1;
      this.height = 1;
      this.zoom = 1;
      this.x = 0;
      this.y = 0;
      this.fitted = true;
      this.split.addEventListener("input", () => this.render());
      this.stage.addEventListener("wheel", (event) => this.onWheel(event), { passive: false });
      this.stage.addEventListener("pointerdown", (event) => this.onPointerDown(event));
      this.stage.addEventListener("keydown", (event) => this.onKey(event));
      for (const button of document.querySelectorAll("[data-zoom]")) {
        button.addEventListener("click", () => this.zoomCommand(button.dataset.zoom));
      }
      new ResizeObserver(() => this.layout()).observe(this.stage.parentElement);
    }

    show(beforeUrl, afterUrl, width, height) {
      this.width = width;
      this.height = height;
      this.content.style.width = `${width}px`;
      this.content.style.height = `${height}px`;
      this.before.src = beforeUrl;
      this.after.src = afterUrl;
      this.layout(true);
    }

    layout(refit) {
      const available = this.stage.parentElement.clientWidth;
      const tall = Math.max(200, Math.min(window.innerHeight * 0.7, available * this.height / this.width));
      this.stage.style.height = `${Math.round(tall)}px`;
      if (refit || this.fitted) this.fit(); else this.render();
    }

    oneToOne() {
      return 1 / (window.devicePixelRatio || 1);
    }

    fit() {
      const zoom = Math.min(this.stage.clientWidth / this.width, this.stage.clientHeight / this.height);
      this.zoom = Math.min(zoom, MAX_ZOOM);
      this.x = (this.stage.clientWidth - this.width * this.zoom) / 2;
      this.y = (this.stage.clientHeight - this.height * this.zoom) / 2;
      this.fitted = true;
      this.render();
    }

    setZoom(zoom, cx = this.stage.clientWidth / 2, cy = this.stage.clientHeight / 2) {
      const low = Math.min(this.oneToOne(), this.stage.clientWidth / this.width, this.stage.clientHeight / this.height);
      zoom = Math.max(low, Math.min(MAX_ZOOM, zoom));
      this.x = cx - (cx - this.x) * zoom / this.zoom;
      this.y = cy - (cy - this.y) * zoom / this.zoom;
      this.zoom = zoom;
      this.fitted = false;
      this.clamp();
      this.render();
    }

    zoomCommand(what) {
      if (what === "fit") this.fit();
      else if (what === "1") this.setZoom(this.oneToOne());
      else this.setZoom(this.zoom * (what === "in" ? 1.5 : 1 / 1.5));
    }

    clamp() {
      for (const [axis, size, view] of [["x", this.width, this.stage.clientWidth],
                                        ["y", this.height, this.stage.clientHeight]]) {
        const shown = size * this.zoom;
        this[axis] = shown <= view ? (view - shown) / 2 : Math.min(0, Math.max(view - shown, this[axis]));
      }
    }

    pan(dx, dy) {
      this.x += dx;
      this.y += dy;
      this.fitted = false;
      this.clamp();
      this.render();
    }

    onWheel(event) {
      event.preventDefault();
      const box = this.stage.getBoundingClientRect();
      this.setZoom(this.zoom * Math.exp(-event.deltaY / 300), event.clientX - box.left, event.clientY - box.top);
    }

    onPointerDown(event) {
      if (event.button !== 0) return;
      const box = this.stage.getBoundingClientRect();
      const zoomed = this.width * this.zoom > box.width + 1 || this.height * this.zoom > box.height + 1;
      let last = [event.clientX, event.clientY];
      const move = (moved) => {
        if (zoomed) this.pan(moved.clientX - last[0], moved.clientY - last[1]);
        else this.setSplit((moved.clientX - box.left) / box.width * 100);
        last = [moved.clientX, moved.clientY];
      };
      if (!zoomed) move(event);
      this.stage.setPointerCapture(event.pointerId);
      this.stage.addEventListener("pointermove", move);
      this.stage.addEventListener("pointerup", () => this.stage.removeEventListener("pointermove", move), { once: true });
    }

    setSplit(percent) {
      this.split.value = String(Math.round(Math.max(0, Math.min(100, percent))));
      this.render();
    }

    onKey(event) {
      const step = 40;
      const keys = {
        ArrowLeft: () => this.pan(step, 0), ArrowRight: () => this.pan(-step, 0),
        ArrowUp: () => this.pan(0, step), ArrowDown: () => this.pan(0, -step),
        "+": () => this.zoomCommand("in"), "=": () => this.zoomCommand("in"), "-": () => this.zoomCommand("out"),
        "0": () => this.zoomCommand("fit"), "1": () => this.zoomCommand("1"),
        "[": () => this.setSplit(Number(this.split.value) - 5), "]": () => this.setSplit(Number(this.split.value) + 5),
      };
      const action = keys[event.key];
      if (action) {
        event.preventDefault();
        action();
      }
    }

    render() {
      this.content.style.transform = `translate(${this.x}px, ${this.y}px) scale(${this.zoom})`;
      const view = this.stage.clientWidth;
      const at = view * Number(this.split.value) / 100;
      this.divider.style.left = `${at}px`;
      const inContent = Math.max(0, Math.min(100, (at - this.x) / (this.width * this.zoom) * 100));
      this.after.style.clipPath = `inset(0 0 0 ${inContent}%)`;
      const atLeastOneToOne = this.zoom >= this.oneToOne() - 1e-9;
      this.after.classList.toggle("pixelated", atLeastOneToOne);
      this.level.textContent = `${Math.round(this.zoom / this.oneToOne() * 100)} %` +
        (Math.abs(this.zoom - this.oneToOne()) < 1e-9 ? " (1:1)" : "");
      this.stage.dataset.zoom = String(this.zoom / this.oneToOne());
    }
  }

  window.Compare = Compare;
})();
